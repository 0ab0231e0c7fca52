"""The synthetic marketplace (generate.py) and its defaults, shared by the CLI and the app's Retrain page."""
DEMO_ROWS = 500_400  # the reference dataset's raw size
DEMO_SEED = 42
DEMO_DIR = "data/demo"
