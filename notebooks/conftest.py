"""pytest's nbval run of these notebooks: every exercise cell checks itself (lss.exercises.self_check):
the shipped skeleton fails, the solution passes, a value outside the tolerance and the typical mistake fail."""
import os

os.environ.setdefault("LSS_CHECK_EXERCISES", "1")
