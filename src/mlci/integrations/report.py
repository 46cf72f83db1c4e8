"""The report's old import path: everything lives in mlci.integrations.reports now."""
from mlci.integrations.reports import (TrialRow, headline, ranked, trial_rows, write_html,  # noqa: F401
                                       write_index, write_plot, write_report)
