-- Placeholder on the `rotation` branch for migration 00014, which another branch (caps) adds: the numbering allows no
-- gaps. Drop this file when merging, so that branch's 00014 takes the number.
select 1;
