-- Intentionally empty: the example tables are not recreated (examples/reference/migrations does that).
SELECT 1;
