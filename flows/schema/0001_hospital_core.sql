-- The hospital application's first tables. Portable between MySQL 8 / MariaDB and SQLite.
-- Times that are data (starts_at) are DATETIME: an old MySQL/MariaDB would turn a table's
-- first TIMESTAMP column into ON UPDATE CURRENT_TIMESTAMP.
CREATE TABLE patients (
    id INTEGER PRIMARY KEY AUTO_INCREMENT,
    medical_record_number VARCHAR(64) NOT NULL UNIQUE,
    full_name VARCHAR(255) NOT NULL,
    date_of_birth DATE,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE staff (
    id INTEGER PRIMARY KEY AUTO_INCREMENT,
    full_name VARCHAR(255) NOT NULL,
    role VARCHAR(64) NOT NULL,
    email VARCHAR(255) UNIQUE,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE appointments (
    id INTEGER PRIMARY KEY AUTO_INCREMENT,
    patient_id INTEGER NOT NULL REFERENCES patients (id),
    staff_id INTEGER NOT NULL REFERENCES staff (id),
    starts_at DATETIME NOT NULL,
    status VARCHAR(32) NOT NULL DEFAULT 'scheduled',
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
