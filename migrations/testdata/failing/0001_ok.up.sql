CREATE TABLE failing_first (id int PRIMARY KEY);
