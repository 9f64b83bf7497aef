CREATE INDEX ix_appointments_starts_at ON appointments (starts_at);
