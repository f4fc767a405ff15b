"""DVC stage `report` (see dvc.yaml): a thin entry point over inpaint.stages."""
import sys

from inpaint.cli import main

sys.exit(main(["report", *sys.argv[1:]]))
