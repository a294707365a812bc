-- Replaced by the pipeline's event tables.
SELECT 1;
