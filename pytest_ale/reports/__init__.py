"""Reports: the results table, summary.json (and, as they land, Allure and baselines)."""
