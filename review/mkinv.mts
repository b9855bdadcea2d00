import * as path from "node:path";
const dir = process.argv[2]!;
const f = await import("/tmp/teardown-review/new/test/helpers/fixtures.ts");
f.writeFakeBinaries(path.join(dir, "bin"));
f.writeInventory(dir, f.baseInventory());
