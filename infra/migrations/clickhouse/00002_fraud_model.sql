-- The fraud model that scored each click: its version in the click's partition (the number of label
-- updates the partition's online model had applied when it scored the click; 0 = rules only).
ALTER TABLE clicks ADD COLUMN IF NOT EXISTS fraud_model_version UInt64 DEFAULT 0 AFTER fraud_reasons;
