-- What an IdP says of a user's credentials (Clerk's user objects do): whether a password is set
-- and when it last changed, and whether an authenticator app is enrolled. NULL when the IdP does
-- not say. Changes become CAEP credential-change security events (ssf).
ALTER TABLE users
    ADD COLUMN password_set        boolean,
    ADD COLUMN password_changed_at timestamptz,
    ADD COLUMN totp_enabled        boolean;
COMMENT ON COLUMN users.password_set IS 'The user has a password; NULL when the IdP does not say.';
COMMENT ON COLUMN users.password_changed_at IS 'When the password was last set, as the IdP says; NULL when unknown.';
COMMENT ON COLUMN users.totp_enabled IS 'An authenticator app (TOTP) is enrolled; NULL when the IdP does not say.';
