-- Intentionally empty: see the up migration. Tables that migration 0005 kept because they held rows
-- belong to their database's owner; this never drops them.
SELECT 1;
