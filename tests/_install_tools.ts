// Installs the pinned tools the tests start (workerd, miniflare) into .tools/
// when missing, before scripts/test.sh runs `deno test` and `bun test` side
// by side: each runner would otherwise install them on first use, and two
// npm installs into one prefix at once can leave a broken one.

import { findMiniflare } from "./_miniflare.ts";
import { findWorkerd } from "./_workerd.ts";

console.log(`workerd: ${await findWorkerd()}`);
console.log(`miniflare: ${await findMiniflare()}`);
