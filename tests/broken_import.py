"""User code that raises while being imported (issue 13 item 7), referenced as "tests.broken_import:Thing".

Only graphs in tests/test_runtime_faults.py import it; pytest does not collect it (not test_*.py).
"""

raise ValueError("BROKEN_SETTING must be a number")  # line 6: the message must name this file and line
