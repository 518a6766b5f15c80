"""CLI: run the flow locally, or serve it as Prefect deployments."""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path

import typer

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


class _EchoUserErrors(logging.Filter):
    """On Prefect's console handler during a local run: the flow's one-line user errors (records
    flagged ``USER_ERROR``, e.g. a bad file in a set) are printed as ``error: <line>``, like
    ``synth-pretrain validate``, instead of in Prefect's log format; the run log keeps them."""

    def __init__(self, flag: str):
        super().__init__()
        self.flag = flag

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, self.flag, False):
            typer.secho(f"error: {record.getMessage()}", fg=typer.colors.RED, err=True)
            return False
        return True


@contextmanager
def _echo_user_errors():
    from prefect.logging.handlers import PrefectConsoleHandler

    from .synth_pretrain import USER_ERROR

    echo = _EchoUserErrors(USER_ERROR)
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, PrefectConsoleHandler)]
    for h in handlers:
        h.addFilter(echo)
    try:
        yield
    finally:
        for h in handlers:
            h.removeFilter(echo)


def _run_flow(**params):
    """The flow, run here; a failed run ends the command on its one-line message, exit code 1."""
    from pipeline.cli import fail

    from .synth_pretrain import synth_pretrain

    with _echo_user_errors():
        state = synth_pretrain(**params, return_state=True)
    if not state.is_completed():
        fail((state.message or "flow run failed").splitlines()[-1], 1)
    return state.result()


def register(app: typer.Typer) -> None:
    from pipeline.cli import fail, user_errors

    @app.command()
    @user_errors
    def run(
        overrides: list[str] = typer.Argument(None, help="config overrides, section.key=value"),
        set_: str = typer.Option(None, "--set", help="set name under data/ or a set folder; '*' = every set in data/ (default: the config's data.set, i.e. the procedural demo set)"),
        config: str = typer.Option("default", "--config", "-c", help="smoke | default | full | path to a YAML file"),
        only_changed: bool = typer.Option(False, help="skip sets unchanged since their last finished run"),
        run_id: str = typer.Option(None, help="name of the run folder (default: time + config name)"),
        if_busy: str = typer.Option("wait", help="another run of the same set is going on (runs/<set>/run.lock): "
                                                 "wait for it, or skip the set"),
    ) -> None:
        """Run the whole synth-pretrain flow locally (no server needed). A bad set is reported one
        line per file and does not stop the other sets; the command then exits with code 1."""
        from pipeline.config import load_config

        overrides = list(overrides or [])
        cfg = load_config(config, overrides)  # fail early on a bad config, before Prefect starts
        if if_busy not in ("wait", "skip"):
            fail(f"--if-busy {if_busy}: use wait or skip")
        sets = ["*"] if set_ == "*" else ([set_] if set_ else None)
        results = _run_flow(sets=sets, config=config, overrides=overrides, only_changed=only_changed,
                            run_id=run_id, if_busy=if_busy)
        for name, out in results.items():
            typer.echo(f"{name}: {out}" + ("/report.html" if str(out).startswith(cfg.runtime.runs_dir) else ""))

    @app.command()
    @user_errors
    def study(
        overrides: list[str] = typer.Argument(None, help="config overrides, section.key=value"),
        set_: str = typer.Option(None, "--set", help="set name under data/ or a set folder (default: the config's data.set)"),
        synthesis: list[str] = typer.Option(["copypaste", "spade"], "--synthesis", "-s",
                                            help="synthesis methods to compare; repeat the option: -s copypaste -s spade"),
        config: str = typer.Option("default", "--config", "-c", help="smoke | default | full | path to a YAML file"),
        run_id: str = typer.Option(None, help="name of the run folder (default: time + config name); the same "
                                              "name again resumes into it"),
        seeds: str = typer.Option("0,1,2", help="training seeds, comma-separated (an override "
                                                "segmentation.seeds=[...] wins)"),
        arms: str = typer.Option(None, help="arms, comma-separated (default: every arm: real_only, pretrained, "
                                            "joint; an override segmentation.arms=[...] wins)"),
    ) -> None:
        """Compare synthesis methods on one set: real_only once, then the pretrained and joint arms of
        every method, over three seeds x segmentation.n_real, every phase to its validation plateau.
        The whole comparison whatever the config: `run` on the CPU default trains real_only and joint
        over one seed, for a quicker answer. Prints the verdicts (first in report.html, report.md
        and results.csv). Same stages, cache and flow as `run`: a killed study resumes, and finished
        arms are reused."""
        from pipeline.config import load_config
        from pipeline.generators.methods import SYNTHESIS_METHODS
        from pipeline.segmentation.arms import ARMS

        known = list(SYNTHESIS_METHODS)
        bad = [m for m in synthesis if m not in known]
        if bad:
            fail(f"--synthesis {' '.join(bad)}: unknown method; known: {', '.join(known)}")
        seed_list = [s.strip() for s in seeds.split(",") if s.strip()]
        if not seed_list or not all(s.isdigit() for s in seed_list):
            fail(f"--seeds {seeds}: give whole numbers separated by commas, e.g. --seeds 0,1,2")
        arm_list = [a.strip() for a in arms.split(",") if a.strip()] if arms else list(ARMS)
        # the study's own defaults come first, so that the user's overrides win
        overrides = [f"segmentation.seeds=[{','.join(seed_list)}]", f"segmentation.arms=[{','.join(arm_list)}]",
                     *(overrides or [])]
        cfg = load_config(config, [*overrides, *([f"data.set={set_}"] if set_ else [])])
        from pipeline.io import read_json

        results = _run_flow(sets=[cfg.data.set], config=config, overrides=overrides, run_id=run_id,
                            synthesis=list(synthesis))
        for name, out in results.items():
            verdict = read_json(Path(out) / "verdict.json")["verdicts"]
            for v in verdict:
                typer.echo(v["sentence"])
            typer.echo(f"{name}: {out}/report.html")

    @app.command()
    @user_errors
    def serve(
        config: str = typer.Option("default", "--config", "-c", help="config the deployments use by default"),
        watch_minutes: float = typer.Option(10.0, help="how often the watch-data deployment checks data/ (0 = off)"),
        overrides: list[str] | None = typer.Argument(
            None, help="config overrides the deployments use by default, section.key=value"
        ),
    ) -> None:
        """Serve the deployments `synth-pretrain/default` and `synth-pretrain/watch-data` to a Prefect server
        (PREFECT_API_URL). Start the server first: prefect server start --host 127.0.0.1"""
        from datetime import timedelta

        from prefect import serve as prefect_serve
        from prefect.deployments.runner import EntrypointType
        from prefect.settings import PREFECT_API_URL

        from pipeline.config import load_config

        overrides = list(overrides or [])
        load_config(config, overrides)
        if not PREFECT_API_URL.value():
            fail("PREFECT_API_URL is not set: start `prefect server start --host 127.0.0.1` and "
                 "`prefect config set PREFECT_API_URL=http://127.0.0.1:4200/api`")
        from .synth_pretrain import synth_pretrain

        common = {"entrypoint_type": EntrypointType.MODULE_PATH}
        params = {"config": config, "overrides": overrides}
        deployments = [
            synth_pretrain.to_deployment(name="default", parameters=params,
                                         description="Run the pipeline on one set (default: the config's data.set).",
                                         **common)
        ]
        if watch_minutes > 0:
            deployments.append(
                synth_pretrain.to_deployment(
                    name="watch-data", interval=timedelta(minutes=watch_minutes),
                    parameters={**params, "sets": ["*"], "only_changed": True, "if_busy": "skip"},
                    description="Check data/ on a schedule and run the pipeline for new or changed sets only; "
                                "a set whose previous run is still going is skipped until the next check.",
                    **common,
                )
            )
        prefect_serve(*deployments)
