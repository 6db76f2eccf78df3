"""Training: the jitted step and the run around it.

    step.py        the jitted, donated, scanned training chunk; mesh and replication
    loop.py        a whole run in a workdir: resume, train, evaluate, write (run)
    workdir.py     a run's folder: created, locked to one process, checked against the config
    checkpoint.py  Orbax checkpoints; one clear error for one that cannot be read or written
    metrics_io.py  metrics.jsonl (strict JSON, repaired after a crash) and TensorBoard
"""
