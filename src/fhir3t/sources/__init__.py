"""Sources yield one patient's raw resources at a time (RawRecord); they know nothing of the trial."""
