"""Plain Python (no Django): the log context every process shares and the JSON log formatter.

Every layer may import it: the web's request id is read where a job row is written (provisioning), and
the worker sets the job's context while it runs the job.
"""
