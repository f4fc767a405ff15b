"""Images: their sources and dataset presets, the prepare stage, the training pairs and their augmentation."""
