-- Undo 0001: drop the tasks table and its priority type.
DROP TABLE tasks;
DROP TYPE task_priority;
