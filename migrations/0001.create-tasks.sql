-- The tasks table: every field of API.md §3, with the validation rules mirrored as constraints.
-- depends:

CREATE TYPE task_priority AS ENUM ('none', 'low', 'medium', 'high');  -- declared in rank order: sorts by rank

CREATE TABLE tasks (
    user_id      text          NOT NULL CHECK (char_length(user_id) BETWEEN 1 AND 255),
    id           bigint        GENERATED ALWAYS AS IDENTITY,
    title        text          NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200 AND btrim(title) <> ''),
    description  text          CHECK (char_length(description) <= 1000),
    completed    boolean       NOT NULL DEFAULT false,
    completed_at timestamptz,
    priority     task_priority NOT NULL DEFAULT 'none',
    tags         text[]        NOT NULL DEFAULT '{}' CHECK (cardinality(tags) <= 20 AND array_position(tags, NULL) IS NULL),
    due_at       timestamptz,
    created_at   timestamptz   NOT NULL DEFAULT now(),
    updated_at   timestamptz   NOT NULL DEFAULT now(),
    version      integer       NOT NULL DEFAULT 1 CHECK (version >= 1),
    -- user_id first: the table stays distributable by user (Citus) and every lookup is by owner.
    PRIMARY KEY (user_id, id),
    CHECK (completed = (completed_at IS NOT NULL))
);

-- The default listing: newest first, ties by id (scanned backwards for the ascending sort).
CREATE INDEX tasks_user_created_idx ON tasks (user_id, created_at, id);
