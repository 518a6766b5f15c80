"""Using a trained model outside the study: predict on folders, export the network, export data as COCO."""
