-- TOTP secrets encrypted at rest (AES-256-GCM with TOTP_SECRET_KEY, `v1.<iv>.<tag>.<ct>`).
-- SQL cannot encrypt with the application's key, so rows written before this migration keep their plain
-- `secret` until the admin API's start-up (`startApi`) encrypts them into `secret_enc` and clears `secret`.
-- New rows only ever set `secret_enc`; the check keeps a row from holding both.
alter table user_two_factor add column secret_enc text;
alter table user_two_factor alter column secret drop not null;
alter table user_two_factor add constraint user_two_factor_one_secret
  check ((secret is null) <> (secret_enc is null));
