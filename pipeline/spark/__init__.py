"""`--engine spark`: the same run as the in-process engine, with the heavy passes as Spark jobs.

Reading, the cleaning counts, the statistics and chart tables, user features, the holdout split and the
engagement audiences run in Spark (local mode, or a cluster with --spark-master); the row-level rules
(parsing ids, events and dates, the engagement formula, the audience kernel, packing) are the in-process
engine's own functions, run on blocks of rows with mapInPandas/applyInPandas. The driver streams every
table into SQLite through store.writer, so the app and the API read the run like any other.
"""
