-- Where each conversion came from: 's2s' (the postback), 'browser' (s.js's POST) or 'pixel'. Rows before this
-- migration read 's2s' (browser conversions were not told apart then). A constant default adds the column without
-- rewriting the table; the check is added NOT VALID so that it holds for every new row without scanning the old ones
-- (which all hold the default).
alter table conversions add column source text not null default 's2s';
alter table conversions
  add constraint conversions_source_check check (source in ('s2s', 'browser', 'pixel')) not valid;
