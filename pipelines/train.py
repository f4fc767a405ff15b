"""DVC stage `train VARIANT` (see dvc.yaml): a thin entry point over inpaint.stages."""
import sys

from inpaint.cli import main

sys.exit(main(["train", *sys.argv[1:]]))
