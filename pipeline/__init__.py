"""The curation library: pure functions on Arrow that the Spark jobs in `jobs/` execute."""
