"""inpaint: GDN, LGNet and PEN-Net under one pipeline (README.md). The stages are inpaint.stages."""
