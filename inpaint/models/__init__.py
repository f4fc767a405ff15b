"""The model zoo. Importing this package registers every architecture (see registry.py)."""
from inpaint.models import gdn, lgnet, patchgan, pennet  # noqa: F401
