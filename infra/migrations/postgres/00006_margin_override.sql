-- An admin's recorded permission for a campaign to pay affiliates more than the advertiser pays
-- (payout > revenue): {"by": <admin users.id>, "reason": "...", "at": "<ISO 8601>"}; null = none, so the
-- API refuses such terms from advertisers and the ledger refuses postings that would pay more than they earn.
alter table campaigns add column margin_override jsonb
  check (margin_override is null or (jsonb_typeof(margin_override -> 'by') = 'number'
                                     and jsonb_typeof(margin_override -> 'reason') = 'string'));
