"""Engine: sweep files become Specs; one runner measures a group; executors (in process, Ray, Optuna) decide where."""
