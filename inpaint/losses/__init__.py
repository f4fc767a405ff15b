"""The training losses: reconstruction, adversarial, perceptual and style, and the detector's."""
