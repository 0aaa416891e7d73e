"""dispatch: jobs and recipes on shared state (the job engine is ``dispatch.jobs``)."""
