/**
 * The part of monperrus/crawler-user-agents (MIT) the click classifier (./traffic.ts) bundles: the patterns
 * tagged `social-preview` (link unfurlers) and `scanner` (security scanners), in
 * `./crawler-user-agents.kinds.json`, with the list's copyright and licence beside it
 * (`./crawler-user-agents.LICENSE`). Regenerate it from a newer copy of the list with
 * `node --import tsx tracker/fraud/crawler-kinds.ts [path/to/crawler-user-agents.json]` (default
 * `../shared/data/crawler-user-agents.json`); `./traffic.test.ts` checks that the bundled file is what this
 * derives from `../shared/data`, so the two cannot drift apart unnoticed.
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The bundled file: where it came from, and the patterns (JavaScript regular expression sources) per kind. */
export interface CrawlerKinds {
  source: string;
  /** sha256 of the crawler-user-agents.json it was derived from. */
  sha256: string;
  license: string;
  previewer: string[];
  scanner: string[];
}

/** One entry of crawler-user-agents.json (the fields used here). */
interface CrawlerEntry {
  pattern: string;
  tags?: string[];
}

/** Derives {@link CrawlerKinds} from the text of crawler-user-agents.json. @throws SyntaxError on bad JSON. */
export function deriveCrawlerKinds(text: string, source: string): CrawlerKinds {
  const list = JSON.parse(text) as CrawlerEntry[];
  const tagged = (tag: string) => list.filter((e) => e.tags?.includes(tag)).map((e) => e.pattern);
  return {
    source,
    sha256: createHash('sha256').update(text).digest('hex'),
    license: 'MIT, Copyright (c) 2017 Martin Monperrus (crawler-user-agents.LICENSE)',
    previewer: tagged('social-preview'),
    scanner: tagged('scanner'),
  };
}

/** Where the bundled file lives. */
export const CRAWLER_KINDS_FILE = import.meta.url.endsWith('.ts')
  ? new URL('./crawler-user-agents.kinds.json', import.meta.url)
  : // Compiled (dist/tracker/fraud/): the data file stays in the source tree, as the migrations do.
    new URL('../../../tracker/fraud/crawler-user-agents.kinds.json', import.meta.url);

/** The bundled patterns. @throws when the file is missing or not JSON. */
export function loadCrawlerKinds(): CrawlerKinds {
  return JSON.parse(readFileSync(CRAWLER_KINDS_FILE, 'utf8')) as CrawlerKinds;
}

/** The shared data copy the repository was built against (see ../shared/data/SOURCES.md). */
export const SHARED_CRAWLER_LIST = new URL('../../../shared/data/crawler-user-agents.json', import.meta.url);

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const path = process.argv[2] ?? fileURLToPath(SHARED_CRAWLER_LIST);
  const kinds = deriveCrawlerKinds(
    readFileSync(path, 'utf8'),
    'monperrus/crawler-user-agents (https://github.com/monperrus/crawler-user-agents)',
  );
  writeFileSync(CRAWLER_KINDS_FILE, `${JSON.stringify(kinds, null, 2)}\n`);
  console.log(`${kinds.previewer.length} previewer and ${kinds.scanner.length} scanner patterns written`);
}
