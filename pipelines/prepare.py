"""DVC stage `prepare` (see dvc.yaml): a thin entry point over inpaint.stages."""
import sys

from inpaint.cli import main

sys.exit(main(["prepare", *sys.argv[1:]]))
