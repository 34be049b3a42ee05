"""Work on whole logs, away from Kafka: reading logs, training and exporting a scorer, choosing
its threshold, replaying a log through the evaluator, and measuring detection quality."""
