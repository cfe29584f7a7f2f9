#!/usr/bin/env node
/*
 * Test launcher for @vercel/cosmosdb-server 1.0.1 (a Cosmos DB for NoSQL
 * look-alike written in Node). It starts the server over plain HTTP on
 * 127.0.0.1 and corrects the gaps that stop the official Rust SDK
 * (azure_data_cosmos 1.1.0-beta.1) from working against it. See README.md
 * beside this file for the list and the reasons.
 *
 * Usage:  node launcher.js [--port N | N] [--host H]
 *         (env PORT, COSMOS_SERVER_HOST; port 0 = pick a free port)
 *
 * Contract with the test harness:
 *   - prints exactly one line `LISTENING <port>` on stdout once it accepts
 *     connections; everything else goes to stderr;
 *   - exits when its stdin is closed (when stdin is a pipe, a socket or a
 *     TTY), when its parent process goes away, and on SIGTERM/SIGINT/SIGHUP.
 *
 * Optional env:
 *   COSMOS_SERVER_LOG=1          one stderr line per request (method, path,
 *                                partition key header, status);
 *                                `headers` also dumps every request's headers
 *   COSMOS_MAX_DOCUMENT_BYTES=N  item size limit (default 2 MiB, as Cosmos)
 *   COSMOS_SERVER_WATCH_STDIN=0|1  force stdin watching off/on
 *   COSMOS_FAULTS='{"seed":1,"throttle":0.05,...}'  faults for every
 *                                database (see "Fault injection" below)
 *
 * Test-only control (no such thing in Cosmos DB): PUT /_faults/<database>
 * with a fault plan turns faults on for that database's documents, GET
 * reads the plan and what was injected so far, DELETE turns them off.
 *
 * The server's route table (lib/routes.js) captures every handler function
 * when it is loaded, so all patches are installed on the handler modules
 * BEFORE the package entry point is required.
 */
"use strict";

const fs = require("fs");
const path = require("path");

// ---------------------------------------------------------------------------
// Locate the pinned package.
// ---------------------------------------------------------------------------
const EXPECTED_VERSION = "1.0.1";
let PKG_DIR;
try {
  PKG_DIR = path.dirname(
    require.resolve("@vercel/cosmosdb-server/package.json", { paths: [__dirname] })
  );
} catch (err) {
  process.stderr.write(
    `cosmos-server launcher: @vercel/cosmosdb-server is not installed; run ` +
      `\`npm ci --prefix ${path.relative(process.cwd(), __dirname) || "."}\` first\n`
  );
  process.exit(2);
}
const PKG_VERSION = JSON.parse(fs.readFileSync(path.join(PKG_DIR, "package.json"), "utf8")).version;
if (PKG_VERSION !== EXPECTED_VERSION) {
  process.stderr.write(
    `cosmos-server launcher: expected @vercel/cosmosdb-server ${EXPECTED_VERSION}, found ${PKG_VERSION}; ` +
      `the patches in launcher.js are written against ${EXPECTED_VERSION}\n`
  );
  process.exit(2);
}
const LIB = path.join(PKG_DIR, "lib");
const libRequire = rel => require(path.join(LIB, rel));
const HANDLER_DIR = path.join(LIB, "handler");

// Resource ids: real Cosmos DB writes them in base64 with '-' in place of
// '/', and the Rust SDK parses them that way. The package writes plain
// base64, so once enough databases or containers exist for a '/' to appear
// (the 64th database, say) the SDK can no longer open a container. Write
// and read them as Cosmos does.
{
  const { default: ResourceId } = libRequire("account/resource-id");
  ResourceId.toBase64String = buffer => buffer.toString("base64").replace(/\//g, "-");
  ResourceId.fromBase64String = s => Buffer.from(String(s).replace(/-/g, "/"), "base64");
}

// ---------------------------------------------------------------------------
// Settings.
// ---------------------------------------------------------------------------
function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i += 1) {
    const a = argv[i];
    if (a === "--port" || a === "-p") out.port = argv[++i];
    else if (a.startsWith("--port=")) out.port = a.slice(7);
    else if (a === "--host") out.host = argv[++i];
    else if (a.startsWith("--host=")) out.host = a.slice(7);
    else if (/^\d+$/.test(a)) out.port = a;
    else {
      process.stderr.write(`cosmos-server launcher: unknown argument ${a}\n`);
      process.exit(2);
    }
  }
  return out;
}
const ARGS = parseArgs(process.argv.slice(2));
const PORT = Number(ARGS.port !== undefined ? ARGS.port : process.env.PORT || 0);
const HOST = ARGS.host || process.env.COSMOS_SERVER_HOST || "127.0.0.1";
if (!Number.isInteger(PORT) || PORT < 0 || PORT > 65535) {
  process.stderr.write(`cosmos-server launcher: bad port ${ARGS.port || process.env.PORT}\n`);
  process.exit(2);
}
const LOG = !!process.env.COSMOS_SERVER_LOG && process.env.COSMOS_SERVER_LOG !== "0";
const LOG_HEADERS = process.env.COSMOS_SERVER_LOG === "headers";
const MAX_DOCUMENT_BYTES = Number(process.env.COSMOS_MAX_DOCUMENT_BYTES || 2 * 1024 * 1024);
const MAX_BATCH_OPERATIONS = 100;
const PK_HEADER = "x-ms-documentdb-partitionkey";

// Filled in once listening: the base URL the account document advertises.
let advertisedEndpoint = null;

// ---------------------------------------------------------------------------
// Modules of the package we reuse.
// ---------------------------------------------------------------------------
const docOps = libRequire("handler/_document-operations");
const patchOps = libRequire("handler/_patch-operations");
const readItems = libRequire("handler/_read-items").default;
const readJson = libRequire("json").default;
const trueHeader = libRequire("true-header").default;
const { parsePartitionKey } = libRequire("utils/get-partition-from-header");
const Items = libRequire("account/items").default;
const cosmosQuery = require(require.resolve("@zeit/cosmosdb-query", { paths: [PKG_DIR] }));

// ---------------------------------------------------------------------------
// Generic helpers.
// ---------------------------------------------------------------------------
const STATUS_CODES = {
  400: "BadRequest",
  401: "Unauthorized",
  403: "Forbidden",
  404: "NotFound",
  405: "MethodNotAllowed",
  409: "Conflict",
  412: "PreconditionFailed",
  413: "RequestEntityTooLarge",
  424: "FailedDependency",
  429: "TooManyRequests",
  500: "InternalServerError",
  503: "ServiceUnavailable"
};
const STATUS_MESSAGES = {
  404: "Entity with the specified id does not exist in the system.",
  409: "Entity with the specified id already exists in the system.",
  412: "Operation cannot be performed because one of the specified precondition is not met.",
  413: "Request size is too large."
};

function cosmosError(res, status, message) {
  res.statusCode = status;
  return {
    code: STATUS_CODES[status] || "Error",
    message: message || STATUS_MESSAGES[status] || `HTTP ${status}`
  };
}

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// Cosmos ETags are quoted strings ("\"0000-...\"") both in the `etag` header
// and in the `_etag` property; the stock server generates bare UUIDs.
function quoteEtag(etag) {
  if (typeof etag !== "string" || etag === "" || etag.startsWith('"') || etag.startsWith("W/")) {
    return etag;
  }
  return `"${etag}"`;
}

function firstHeader(req, name) {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function sizeOf(doc) {
  return Buffer.byteLength(JSON.stringify(doc), "utf8");
}

// Cosmos rules for ids: a non-empty string of at most 1023 characters
// without '/', '\\', '?' or '#'.
function idProblem(id) {
  if (typeof id !== "string" || id.length === 0) return "The input content is invalid because the required properties - 'id; ' - are missing";
  if (id.length > 1023) return "The id is too long (maximum 1023 characters).";
  if (/[/\\?#]/.test(id)) return `The input name '${id}' is invalid. Ensure to provide a unique non-empty string less than '1024' characters. Input name cannot contain the characters '/', '\\', '?', '#'.`;
  return null;
}

function collectionOf(account, dbId, collId) {
  const collection = account.database(dbId).collection(collId);
  return collection.read() ? collection : null;
}

// Partition key paths of a container; [] for the legacy non-partitioned kind
// (there the stock server keys everything by id).
function pkPaths(collection) {
  const data = collection.read();
  const paths = (data && data.partitionKey && data.partitionKey.paths) || [];
  if (paths.some(p => p === "/_partitionKey")) return [];
  return paths;
}

function valueAt(doc, pkPath) {
  let cur = doc;
  for (const seg of pkPath.slice(1).split("/")) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = cur[seg.replace(/^"(.*)"$/, "$1")];
  }
  return cur;
}

// The partition key header as an array of component values, or null when
// absent. `{}` stands for "undefined" (PartitionKey::UNDEFINED / NONE).
function pkHeaderValues(req) {
  const raw = firstHeader(req, PK_HEADER);
  if (raw === undefined) return null;
  let v;
  try {
    v = JSON.parse(raw);
  } catch (err) {
    throw new HttpError(400, `Failed to parse ${PK_HEADER} header: ${raw}`);
  }
  return Array.isArray(v) ? v : [v];
}

function componentMatches(headerValue, docValue) {
  if (headerValue !== null && typeof headerValue === "object") return docValue === undefined;
  return docValue === headerValue;
}

// Does `doc` belong to the logical partition named by `values`? A shorter
// list of values is a prefix (hierarchical keys).
function docInPartition(doc, paths, values) {
  if (!values || values.length === 0 || paths.length === 0) return true;
  for (let i = 0; i < paths.length && i < values.length; i += 1) {
    if (!componentMatches(values[i], valueAt(doc, paths[i]))) return false;
  }
  return true;
}

// Validation shared by every write that carries a whole document.
function checkDocument(doc, paths, pkValues, { urlId } = {}) {
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) {
    return { statusCode: 400, message: "The request payload is invalid: a JSON object is required." };
  }
  const bad = idProblem(doc.id);
  if (bad) return { statusCode: 400, message: bad };
  if (urlId !== undefined && doc.id !== urlId) {
    return { statusCode: 400, message: "The id in the request body does not match the id in the request URL." };
  }
  if (pkValues && paths.length && (pkValues.length !== paths.length || !docInPartition(doc, paths, pkValues))) {
    return {
      statusCode: 400,
      message: "PartitionKey extracted from document doesn't match the one specified in the header."
    };
  }
  if (sizeOf(doc) > MAX_DOCUMENT_BYTES) return { statusCode: 413, message: STATUS_MESSAGES[413] };
  return null;
}

// An atomic change to a container's documents: everything the stock
// Items class keeps, copied shallowly (stored documents are never mutated
// in place, every write stores a fresh object).
function snapshot(items) {
  return { data: new Map(items._data), index: new Map(items._index), ridCount: items._ridCount };
}
function restore(items, snap) {
  items._data = snap.data;
  items._index = snap.index;
  items._ridCount = snap.ridCount;
}

// Run `fn` (returning {statusCode, body}); if it succeeded but left a
// document larger than the limit, undo it and answer 413.
function withSizeLimit(items, fn) {
  const snap = snapshot(items);
  const result = fn();
  if (result.statusCode < 300 && result.body && sizeOf(result.body) > MAX_DOCUMENT_BYTES) {
    restore(items, snap);
    return { statusCode: 413, body: { code: STATUS_CODES[413], message: STATUS_MESSAGES[413] } };
  }
  return result;
}

function send(res, result) {
  res.statusCode = result.statusCode;
  return result.body;
}

// ---------------------------------------------------------------------------
// Storage-level fix: quoted ETags on everything stored.
// ---------------------------------------------------------------------------
const originalSet = Items.prototype._set;
Items.prototype._set = function setWithQuotedEtag(data) {
  if (data && typeof data._etag === "string") data._etag = quoteEtag(data._etag);
  return originalSet.call(this, data);
};

// ---------------------------------------------------------------------------
// Per-request plumbing shared by every handler.
// ---------------------------------------------------------------------------
function prepareRequest(req, res) {
  // If-Match: accept bare or quoted ETags; `*` matches any existing item.
  const ifMatch = firstHeader(req, "if-match");
  if (ifMatch === "*") delete req.headers["if-match"];
  else if (ifMatch !== undefined) req.headers["if-match"] = quoteEtag(ifMatch);
  const ifNoneMatch = firstHeader(req, "if-none-match");
  if (ifNoneMatch !== undefined && ifNoneMatch !== "*") req.headers["if-none-match"] = quoteEtag(ifNoneMatch);

  // The package's request handler sets these after our handler returns.
  const setHeader = res.setHeader.bind(res);
  res.setHeader = (name, value) => {
    const lower = String(name).toLowerCase();
    if (lower === "etag" && value !== "1") return setHeader(name, quoteEtag(value));
    if (lower === "content-location" && typeof value === "string") {
      return setHeader(name, value.replace(/^https:/, "http:"));
    }
    if (lower === "x-ms-request-charge" && res.cosmosRequestCharge !== undefined) {
      return setHeader(name, String(res.cosmosRequestCharge));
    }
    return setHeader(name, value);
  };

  if (LOG_HEADERS) process.stderr.write(`[cosmos-server] ${req.method} ${req.url} ${JSON.stringify(req.headers)}\n`);
  if (LOG) {
    const started = Date.now();
    res.on("finish", () => {
      process.stderr.write(
        `[cosmos-server] ${req.method} ${req.url} pk=${firstHeader(req, PK_HEADER) || "-"} ` +
          `${Object.keys(req.headers)
            .filter(h => /^x-ms-(cosmos-is|documentdb-is|documentdb-query|max-item|continuation|cosmos-batch)/.test(h))
            .map(h => `${h}=${firstHeader(req, h).slice(0, 60)}`)
            .join(" ")} -> ${res.statusCode} (${Date.now() - started} ms)\n`
      );
    });
  }
}

// Handlers whose success answer Cosmos leaves empty under
// `Prefer: return=minimal` (the SDK's default for writes unless
// ContentResponseOnWrite is enabled). The ETag header stays.
const MINIMAL_WRITE_HANDLERS = new Set(["create-document", "upsert-document", "replace-document", "patch-document"]);

function wantsMinimal(req) {
  return /return=minimal/i.test(String(firstHeader(req, "prefer") || ""));
}

function finishResponse(res, body, { req, name } = {}) {
  if (
    res.statusCode >= 200 && res.statusCode < 300 && MINIMAL_WRITE_HANDLERS.has(name) &&
    wantsMinimal(req) && body && typeof body === "object"
  ) {
    if (body._etag) res.setHeader("etag", body._etag);
    return undefined;
  }
  if (res.statusCode >= 400) {
    const out = body && typeof body === "object" && !Array.isArray(body) ? body : {};
    if (!out.code) out.code = STATUS_CODES[res.statusCode] || "Error";
    if (!out.message) out.message = STATUS_MESSAGES[res.statusCode] || `HTTP ${res.statusCode}`;
    if (res.statusCode === 404 && !res.hasHeader("x-ms-substatus")) res.setHeader("x-ms-substatus", "0");
    return out;
  }
  return body;
}

function bodyForException(err, res) {
  if (err instanceof HttpError) return cosmosError(res, err.status, err.message);
  if (err instanceof SyntaxError || err instanceof cosmosQuery.SyntaxError || err.badRequest) {
    return cosmosError(res, 400, err.message);
  }
  if (err.conflict) return cosmosError(res, 409, err.message);
  if (/^Failed to parse x-ms-documentdb-partitionkey/.test(err.message || "")) {
    return cosmosError(res, 400, err.message);
  }
  process.stderr.write(`[cosmos-server] internal error: ${err && err.stack ? err.stack : err}\n`);
  return cosmosError(res, 500, err && err.message);
}

// ---------------------------------------------------------------------------
// Replacement handlers.
// ---------------------------------------------------------------------------
const fixes = {};

// GET / — the database account. Advertise this plain-HTTP server, not
// https:// (the SDK follows the advertised locations).
fixes["read-meta"] = (original, account, req, res, params) => {
  const data = JSON.parse(JSON.stringify(original(account, req, res, params)));
  for (const key of ["writableLocations", "readableLocations"]) {
    for (const loc of data[key] || []) {
      loc.databaseAccountEndpoint = advertisedEndpoint || loc.databaseAccountEndpoint.replace(/^https:/, "http:");
    }
  }
  return data;
};

// GET .../pkranges — ids (and parents) are strings in Cosmos.
fixes["read-partition-key-ranges"] = async (original, account, req, res, params) => {
  const body = await original(account, req, res, params);
  if (body && Array.isArray(body.PartitionKeyRanges)) {
    return {
      ...body,
      PartitionKeyRanges: body.PartitionKeyRanges.map(r => ({
        ...r,
        id: String(r.id),
        parents: (r.parents || []).map(String),
        ownedArchivalPKRangeIds: (r.ownedArchivalPKRangeIds || []).map(String)
      }))
    };
  }
  return body;
};

// Point lookup of a document in the partition named by the request.
function findDocument(collection, id, pkValues, req) {
  const raw = firstHeader(req, PK_HEADER);
  const paths = pkPaths(collection);
  let doc;
  if (raw !== undefined) {
    doc = collection.document(id, parsePartitionKey(raw, id)).read();
  } else if (paths.length) {
    throw new HttpError(400, "PartitionKey value must be supplied for this operation.");
  } else {
    doc = [...collection.documents._data.values()].map(i => i.read()).find(d => d.id === id);
  }
  if (!doc || doc.id !== id || !docInPartition(doc, paths, pkValues)) return null;
  return doc;
}

// GET .../docs/:id — 404 (not a 500 crash) for a missing item; 304 on a
// matching If-None-Match.
fixes["read-document"] = (original, account, req, res, { dbId, collId, docId }) => {
  const collection = collectionOf(account, dbId, collId);
  if (!collection) return cosmosError(res, 404, "Owner resource does not exist");
  const pkValues = pkHeaderValues(req);
  const doc = findDocument(collection, docId, pkValues, req);
  if (!doc) return cosmosError(res, 404);
  const ifNoneMatch = firstHeader(req, "if-none-match");
  if (ifNoneMatch && (ifNoneMatch === "*" || ifNoneMatch === doc._etag)) {
    res.statusCode = 304;
    res.setHeader("etag", doc._etag);
    return undefined;
  }
  res.statusCode = 200;
  return doc;
};

// POST .../docs — create: validate id, partition key (header vs body) and
// size; 409 for an existing id (stock behaviour).
fixes["create-document"] = async (original, account, req, res, { dbId, collId }) => {
  const body = await readJson(req);
  const collection = collectionOf(account, dbId, collId);
  if (!collection) return cosmosError(res, 404, "Owner resource does not exist");
  const problem = checkDocument(body, pkPaths(collection), pkHeaderValues(req));
  if (problem) return cosmosError(res, problem.statusCode, problem.message);
  return send(res, docOps.createOperation(collection, { resourceBody: body }));
};

// POST .../docs with x-ms-documentdb-is-upsert.
fixes["upsert-document"] = async (original, account, req, res, { dbId, collId }) => {
  const body = await readJson(req);
  const collection = collectionOf(account, dbId, collId);
  if (!collection) return cosmosError(res, 404, "Owner resource does not exist");
  const problem = checkDocument(body, pkPaths(collection), pkHeaderValues(req));
  if (problem) return cosmosError(res, problem.statusCode, problem.message);
  return send(
    res,
    docOps.upsertOperation(collection, {
      partitionKey: firstHeader(req, PK_HEADER),
      ifMatch: firstHeader(req, "if-match"),
      resourceBody: body
    })
  );
};

// PUT .../docs/:id — replace.
fixes["replace-document"] = async (original, account, req, res, { dbId, collId, docId }) => {
  const body = await readJson(req);
  const collection = collectionOf(account, dbId, collId);
  if (!collection) return cosmosError(res, 404, "Owner resource does not exist");
  const pkValues = pkHeaderValues(req);
  const problem = checkDocument(body, pkPaths(collection), pkValues, { urlId: docId });
  if (problem) return cosmosError(res, problem.statusCode, problem.message);
  if (!findDocument(collection, docId, pkValues, req)) return cosmosError(res, 404);
  return send(
    res,
    docOps.replaceOperation(collection, {
      partitionKey: firstHeader(req, PK_HEADER),
      ifMatch: firstHeader(req, "if-match"),
      resourceBody: body
    })
  );
};

// DELETE .../docs/:id
fixes["delete-document"] = (original, account, req, res, { dbId, collId, docId }) => {
  const collection = collectionOf(account, dbId, collId);
  if (!collection) return cosmosError(res, 404, "Owner resource does not exist");
  if (!findDocument(collection, docId, pkHeaderValues(req), req)) return cosmosError(res, 404);
  return send(
    res,
    docOps.deleteOperation(collection, {
      partitionKey: firstHeader(req, PK_HEADER),
      ifMatch: firstHeader(req, "if-match"),
      id: docId
    })
  );
};

// PATCH .../docs/:id — stock semantics (If-Match, conditions, the six ops),
// plus 404 body, partition check and the size limit on the result.
fixes["patch-document"] = async (original, account, req, res, { dbId, collId, docId }) => {
  const body = await readJson(req);
  const collection = collectionOf(account, dbId, collId);
  if (!collection) return cosmosError(res, 404, "Owner resource does not exist");
  let operations;
  if (Array.isArray(body)) operations = body;
  else if (body && Array.isArray(body.operations)) operations = body.operations;
  else return cosmosError(res, 400, "Invalid patch request: check syntax of patch specification.");
  if (!findDocument(collection, docId, pkHeaderValues(req), req)) return cosmosError(res, 404);
  return send(
    res,
    withSizeLimit(collection.documents, () =>
      patchOps.patchOperation(collection, {
        id: docId,
        partitionKey: firstHeader(req, PK_HEADER),
        ifMatch: firstHeader(req, "if-match"),
        operations,
        condition: Array.isArray(body) ? undefined : body.condition
      })
    )
  );
};

// POST .../docs with x-ms-documentdb-isquery — honour the partition key
// header: a single-partition query sees only that partition's items.
// Items are handed to the query engine in `_rid` order, which its
// continuation tokens assume.
fixes["query-documents"] = (original, account, req, res, { dbId, collId }) =>
  readItems(req, res, "Documents", async ({ continuation, maxItemCount }) => {
    const body = await readJson(req);
    if (!body || !body.query) return cosmosError(res, 400, "missing query");
    const collection = collectionOf(account, dbId, collId);
    if (!collection) return null; // -> 404
    const paths = pkPaths(collection);
    const pkValues = pkHeaderValues(req);
    const q = collection.documents._getQuery(body.query);
    // The Rust SDK runs a cross-partition query as one request per
    // partition key range, naming it in x-ms-documentdb-partitionkeyrangeid
    // (there is one range, "0", holding everything).
    if (
      !pkValues &&
      !trueHeader(req, "x-ms-documentdb-query-enablecrosspartition") &&
      firstHeader(req, "x-ms-documentdb-partitionkeyrangeid") === undefined &&
      paths.length &&
      !q.containsPartitionKeys(paths)
    ) {
      return cosmosError(
        res,
        400,
        "Cross partition query is required but disabled. Please set x-ms-documentdb-query-enablecrosspartition to true, specify x-ms-documentdb-partitionkey, or revise your query to avoid this exception."
      );
    }
    let docs = [...collection.documents._data.values()].map(i => i.read());
    if (pkValues && pkValues.length) docs = docs.filter(d => docInPartition(d, paths, pkValues));
    docs.sort((a, b) => (a._rid < b._rid ? -1 : a._rid > b._rid ? 1 : 0));
    const parent = collection.read();
    const compositeIndexes = (parent.indexingPolicy && parent.indexingPolicy.compositeIndexes) || [];
    try {
      return q.exec(docs, {
        parameters: body.parameters,
        udf: collection.documents._userDefinedFunctions(),
        maxItemCount,
        continuation,
        compositeIndexes
      });
    } catch (err) {
      if (err instanceof cosmosQuery.SyntaxError) throw err;
      return cosmosError(res, 400, err.message);
    }
  });

// One operation of a batch; `input.partitionKey` is the JSON header text.
function runBatchOperation(collection, paths, pkValues, input) {
  const type = input && input.operationType;
  const fail = (statusCode, message) => ({
    statusCode,
    body: { code: STATUS_CODES[statusCode], message: message || STATUS_MESSAGES[statusCode] }
  });
  const withDoc = ["Create", "Upsert", "Replace"].includes(type);
  if (withDoc) {
    const problem = checkDocument(input.resourceBody, paths, pkValues, {
      urlId: type === "Replace" && input.id !== undefined ? input.id : undefined
    });
    if (problem) return fail(problem.statusCode, problem.message);
  }
  const existing = id => {
    const doc = collection.document(id, parsePartitionKey(input.partitionKey, id)).read();
    return doc && doc.id === id && docInPartition(doc, paths, pkValues) ? doc : null;
  };
  const ifMatch = input.ifMatch === "*" ? undefined : input.ifMatch && quoteEtag(input.ifMatch);
  switch (type) {
    case "Create":
      return docOps.createOperation(collection, input);
    case "Upsert":
      return docOps.upsertOperation(collection, { ...input, ifMatch });
    case "Replace":
      if (!existing(input.resourceBody.id)) return fail(404);
      return docOps.replaceOperation(collection, { ...input, ifMatch });
    case "Read": {
      const doc = existing(input.id);
      if (!doc) return fail(404);
      if (ifMatch && ifMatch !== doc._etag) return fail(412);
      const inm = input.ifNoneMatch && quoteEtag(input.ifNoneMatch);
      if (inm && (inm === "*" || inm === doc._etag)) return { statusCode: 304, body: undefined, etag: doc._etag };
      return { statusCode: 200, body: doc };
    }
    case "Delete": {
      const doc = existing(input.id);
      if (!doc) return fail(404);
      return docOps.deleteOperation(collection, { ...input, ifMatch });
    }
    case "Patch": {
      if (!existing(input.id)) return fail(404);
      const spec = input.resourceBody || {};
      const operations = Array.isArray(spec) ? spec : spec.operations;
      if (!Array.isArray(operations)) return fail(400, "Invalid patch request: check syntax of patch specification.");
      return withSizeLimit(collection.documents, () =>
        patchOps.patchOperation(collection, {
          id: input.id,
          partitionKey: input.partitionKey,
          ifMatch,
          operations,
          condition: Array.isArray(spec) ? undefined : spec.condition
        })
      );
    }
    default:
      return fail(400, `Operation type '${type}' is not supported in Batch.`);
  }
}

// POST .../docs with x-ms-cosmos-is-batch-request — transactional batch.
// Operations inherit the request's partition key; an atomic batch is all or
// nothing; the answer is 200 when every operation succeeded, else 207 with
// the failing operation's status and 424 for every other one.
fixes["batch-documents"] = async (original, account, req, res, { dbId, collId }) => {
  const body = await readJson(req);
  const collection = collectionOf(account, dbId, collId);
  if (!collection) return cosmosError(res, 404, "Owner resource does not exist");
  if (!Array.isArray(body)) return cosmosError(res, 400, "Invalid batch request body: a JSON array is required.");
  if (body.length === 0) return cosmosError(res, 400, "Batch request has no operations.");
  if (body.length > MAX_BATCH_OPERATIONS) {
    return cosmosError(res, 400, `Batch request has more operations than the maximum allowed (${MAX_BATCH_OPERATIONS}).`);
  }
  const isAtomic = trueHeader(req, "x-ms-cosmos-batch-atomic");
  const continueOnError = trueHeader(req, "x-ms-cosmos-batch-continue-on-error");
  const headerPk = firstHeader(req, PK_HEADER);
  const paths = pkPaths(collection);
  if (isAtomic && headerPk === undefined && paths.length) {
    return cosmosError(res, 400, `Transactional batch requires the ${PK_HEADER} header.`);
  }

  const minimal = wantsMinimal(req);
  const snap = isAtomic ? snapshot(collection.documents) : null;
  let results = [];
  let failedAt = -1;
  for (let i = 0; i < body.length; i += 1) {
    if (failedAt >= 0 && !continueOnError) {
      results.push({ statusCode: 424, requestCharge: 0 });
      continue;
    }
    const op = body[i] || {};
    let opPk = headerPk;
    if (op.partitionKey !== undefined) opPk = typeof op.partitionKey === "string" ? op.partitionKey : JSON.stringify(op.partitionKey);
    let opPkValues;
    try {
      opPkValues = opPk === undefined ? null : JSON.parse(opPk);
      if (opPkValues !== null && !Array.isArray(opPkValues)) opPkValues = [opPkValues];
    } catch (err) {
      opPkValues = undefined;
    }
    let result;
    if (opPkValues === undefined) {
      result = { statusCode: 400, body: { code: "BadRequest", message: `Failed to parse partition key ${opPk}` } };
    } else {
      try {
        result = runBatchOperation(collection, paths, opPkValues, { ...op, partitionKey: opPk === undefined ? "[{}]" : opPk });
      } catch (err) {
        const r = {};
        const b = bodyForException(err, r);
        result = { statusCode: r.statusCode, body: b };
      }
    }
    if (result.statusCode >= 400) {
      if (failedAt < 0) failedAt = i;
      results.push({ statusCode: result.statusCode, requestCharge: 1 });
    } else {
      const etag = result.etag || (result.body ? result.body._etag : undefined);
      const entry = { statusCode: result.statusCode, requestCharge: 1 };
      if (etag) entry.eTag = etag;
      if (result.body !== undefined && (op.operationType === "Read" || !minimal)) entry.resourceBody = result.body;
      results.push(entry);
    }
  }

  if (isAtomic && failedAt >= 0) {
    restore(collection.documents, snap);
    results = results.map((r, i) =>
      i === failedAt ? { statusCode: r.statusCode, requestCharge: r.requestCharge } : { statusCode: 424, requestCharge: 0 }
    );
  }
  res.cosmosRequestCharge = results.reduce((sum, r) => sum + (r.requestCharge || 0), 0) || 1;
  res.statusCode = results.some(r => r.statusCode >= 300) ? 207 : 200;
  return results;
};

// ---------------------------------------------------------------------------
// Requests served, by handler: `GET /_launcher/requests` answers them as
// JSON ({"total": N, "query-documents": N, …}), so that a benchmark can count
// the requests an operation costs at the server itself. Not a Cosmos API.
// ---------------------------------------------------------------------------
const requestCounts = { total: 0 };
function countRequest(name) {
  requestCounts.total += 1;
  requestCounts[name] = (requestCounts[name] || 0) + 1;
}
const STATS_PATH = "/_launcher/requests";

// ---------------------------------------------------------------------------
// Request charges. Stock, every answer is charged 1; here an answer is
// charged by the bytes it moved, like Cosmos DB (not its table, but sizes
// tell operations apart): 1 RU plus 1 per KiB of request and answer body,
// rounded to hundredths. Batches keep their per-operation charges. The
// charges answered, newest last, are listed by `GET /_launcher/charges`
// ([{seq, method, path, status, charge}], the last CHARGE_LOG_SIZE; `seq`
// counts every answer from 1), so that a test can compare what a client
// reports with what the server charged.
// ---------------------------------------------------------------------------
const CHARGE_LOG_SIZE = 10000;
const CHARGES_PATH = "/_launcher/charges";
const chargeLog = [];
let chargeSeq = 0;
function chargeBySize(req, res, body) {
  if (res.cosmosRequestCharge !== undefined) return;
  const requestBytes = Number(req.headers["content-length"] || 0);
  const answerBytes = body === undefined ? 0 : Buffer.byteLength(JSON.stringify(body));
  res.cosmosRequestCharge = Math.round((1 + (requestBytes + answerBytes) / 1024) * 100) / 100;
}
function logCharge(req, res) {
  res.on("finish", () => {
    const charge = Number(res.getHeader("x-ms-request-charge"));
    chargeSeq += 1;
    chargeLog.push({ seq: chargeSeq, method: req.method, path: req.url, status: res.statusCode, charge });
    if (chargeLog.length > CHARGE_LOG_SIZE) chargeLog.shift();
  });
}

// ---------------------------------------------------------------------------
// Install: wrap every handler module, then load the package.
// ---------------------------------------------------------------------------
for (const file of fs.readdirSync(HANDLER_DIR)) {
  if (!file.endsWith(".js") || file.startsWith("_")) continue;
  const name = file.slice(0, -3);
  const mod = require(path.join(HANDLER_DIR, file));
  const original = mod.default;
  if (typeof original !== "function") continue;
  const fix = fixes[name];
  mod.default = async (account, req, res, params) => {
    countRequest(name);
    prepareRequest(req, res);
    logCharge(req, res);
    let body;
    try {
      body = await (fix ? fix(original, account, req, res, params) : original(account, req, res, params));
    } catch (err) {
      body = bodyForException(err, res);
    }
    const answer = finishResponse(res, body, { req, name });
    chargeBySize(req, res, answer);
    return answer;
  };
}
for (const name of Object.keys(fixes)) {
  if (!fs.existsSync(path.join(HANDLER_DIR, `${name}.js`))) {
    process.stderr.write(`cosmos-server launcher: handler ${name} not found in the package\n`);
    process.exit(2);
  }
}

const { createHttpServer } = require(PKG_DIR); // loads lib/routes.js now

// ---------------------------------------------------------------------------
// Start, report, and stop with the parent.
// ---------------------------------------------------------------------------
const server = createHttpServer();

// ---------------------------------------------------------------------------
// Fault injection: what a real account does to a client under load and on
// a bad network, on demand and reproducibly. A plan names per-request
// probabilities; each document request (reads, writes, queries, batches —
// not account or container metadata) of the plan's database draws from a
// PRNG seeded by the plan, so one request order gives one fault sequence.
//
//   throttle       429 TooManyRequests with x-ms-retry-after-ms
//                  (`retry_after_ms`, default 20) and sub-status 3200; not
//                  applied
//   unavailable    503 ServiceUnavailable; not applied
//   reset          the connection is closed before the request is handled
//   lost_response  the request is handled (a write is applied), then the
//                  connection is closed instead of answering (not for GET)
//   delay          the request waits `delay_ms` (default 50) first; drawn
//                  independently of the others
// ---------------------------------------------------------------------------
const FAULT_KINDS = ["throttle", "unavailable", "reset", "lost_response"];
const faultPlans = new Map(); // database id (or "*") -> { plan, random, injected, requests }

// mulberry32: small, seedable, good enough to spread faults.
function seededRandom(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function faultState(plan) {
  for (const key of [...FAULT_KINDS, "delay"]) {
    const p = plan[key] === undefined ? 0 : plan[key];
    if (typeof p !== "number" || !(p >= 0 && p <= 1)) throw new Error(`${key} must be a probability (0..1)`);
  }
  const total = FAULT_KINDS.reduce((sum, k) => sum + (plan[k] || 0), 0);
  if (total > 1) throw new Error("the probabilities of throttle, unavailable, reset and lost_response add up to more than 1");
  const injected = {};
  for (const key of [...FAULT_KINDS, "delay"]) injected[key] = 0;
  return { plan, random: seededRandom(Number(plan.seed) || 0), injected, requests: 0 };
}

if (process.env.COSMOS_FAULTS) faultPlans.set("*", faultState(JSON.parse(process.env.COSMOS_FAULTS)));

function faultsReport(state) {
  return { plan: state.plan, requests: state.requests, injected: state.injected };
}

// PUT/GET/DELETE /_faults/<database>
function handleFaultControl(req, res, database) {
  const reply = (status, body) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(body === undefined ? undefined : JSON.stringify(body));
  };
  if (req.method === "GET") {
    const state = faultPlans.get(database);
    return state ? reply(200, faultsReport(state)) : reply(404, { message: "no fault plan" });
  }
  if (req.method === "DELETE") {
    const state = faultPlans.get(database);
    faultPlans.delete(database);
    return state ? reply(200, faultsReport(state)) : reply(404, { message: "no fault plan" });
  }
  if (req.method !== "PUT") return reply(405, { message: "PUT, GET or DELETE" });
  let text = "";
  req.setEncoding("utf8");
  req.on("data", chunk => (text += chunk));
  req.on("end", () => {
    try {
      faultPlans.set(database, faultState(JSON.parse(text)));
      reply(204);
    } catch (err) {
      reply(400, { message: err.message });
    }
  });
  return undefined;
}

const DOCS_PATH = /^\/dbs\/([^/]+)\/colls\/[^/]+\/docs(\/|$|\?)/;

// The fault for this request, or null; also counts it.
function drawFault(req) {
  const match = DOCS_PATH.exec(req.url);
  if (!match) return null;
  const state = faultPlans.get(decodeURIComponent(match[1])) || faultPlans.get("*");
  if (!state) return null;
  state.requests += 1;
  const { plan, random, injected } = state;
  const fault = { kind: null, delay: 0 };
  if (plan.delay && random() < plan.delay) {
    injected.delay += 1;
    fault.delay = plan.delay_ms === undefined ? 50 : plan.delay_ms;
  }
  let u = random();
  for (const kind of FAULT_KINDS) {
    const p = plan[kind] || 0;
    if (u < p) {
      if (kind === "lost_response" && req.method === "GET") break;
      injected[kind] += 1;
      fault.kind = kind;
      fault.plan = plan;
      break;
    }
    u -= p;
  }
  return fault;
}

function injectFault(fault, req, res, next) {
  if (fault.kind === "reset") {
    req.socket.destroy();
    return;
  }
  if (fault.kind === "throttle" || fault.kind === "unavailable") {
    const status = fault.kind === "throttle" ? 429 : 503;
    const headers = {
      "content-type": "application/json",
      "x-ms-activity-id": require("crypto").randomUUID(),
      "x-ms-request-charge": "0",
      connection: "close"
    };
    if (status === 429) {
      headers["x-ms-retry-after-ms"] = String(fault.plan.retry_after_ms === undefined ? 20 : fault.plan.retry_after_ms);
      headers["x-ms-substatus"] = "3200";
    }
    const message =
      status === 429
        ? "Request rate is large. More Request Units may be needed, so no changes were made. Please retry this request later."
        : "The service is currently unavailable.";
    // Read the body first, as a server does, then answer.
    req.resume();
    req.on("end", () => {
      res.writeHead(status, headers);
      res.end(JSON.stringify({ code: STATUS_CODES[status] || "ServiceUnavailable", message }));
    });
    return;
  }
  if (fault.kind === "lost_response") {
    // Handled in full, then the answer never leaves.
    res.write = () => true;
    res.end = () => {
      req.socket.destroy();
      return res;
    };
  }
  next();
}

{
  const listeners = server.listeners("request");
  server.removeAllListeners("request");
  server.on("request", (req, res) => {
    if (req.method === "GET" && req.url === STATS_PATH) {
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify(requestCounts));
      return undefined;
    }
    if (req.method === "GET" && req.url === CHARGES_PATH) {
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify(chargeLog));
      return undefined;
    }
    const control = /^\/_faults\/([^/?]+)/.exec(req.url);
    if (control) return handleFaultControl(req, res, decodeURIComponent(control[1]));
    const next = () => listeners.forEach(listener => listener.call(server, req, res));
    const fault = drawFault(req);
    if (!fault) return next();
    const go = () => injectFault(fault, req, res, next);
    if (fault.delay > 0) setTimeout(go, fault.delay);
    else go();
    return undefined;
  });
}
let stopping = false;
function stop(code) {
  if (stopping) return;
  stopping = true;
  server.close();
  if (typeof server.closeAllConnections === "function") server.closeAllConnections();
  process.exit(code);
}

server.on("error", err => {
  process.stderr.write(`cosmos-server launcher: ${err.message}\n`);
  process.exit(1);
});

server.listen(PORT, HOST, () => {
  const { address, port, family } = server.address();
  const host = address === "0.0.0.0" || address === "::" ? "localhost" : family === "IPv6" ? `[${address}]` : address;
  advertisedEndpoint = `http://${host}:${port}/`;
  process.stdout.write(`LISTENING ${port}\n`);
  process.stderr.write(`cosmos-server launcher: ${advertisedEndpoint} (@vercel/cosmosdb-server ${PKG_VERSION}, patched)\n`);
});

for (const sig of ["SIGTERM", "SIGINT", "SIGHUP"]) process.on(sig, () => stop(0));

// Exit when stdin closes — the harness keeps a pipe open for as long as it
// lives, so a crashed test run never leaves the server behind. Stdin that is
// a regular file or /dev/null (e.g. `node launcher.js </dev/null &`) is not
// watched, unless COSMOS_SERVER_WATCH_STDIN=1.
function stdinIsWatchable() {
  const forced = process.env.COSMOS_SERVER_WATCH_STDIN;
  if (forced === "0") return false;
  if (forced === "1") return true;
  try {
    const st = fs.fstatSync(0);
    return st.isFIFO() || st.isSocket() || process.stdin.isTTY === true;
  } catch (err) {
    return false;
  }
}
if (stdinIsWatchable()) {
  process.stdin.on("data", () => {});
  process.stdin.on("end", () => stop(0));
  process.stdin.on("close", () => stop(0));
  process.stdin.on("error", () => stop(0));
  process.stdin.resume();
}

// Also exit if the parent process dies (we get re-parented).
const parentPid = process.ppid;
setInterval(() => {
  if (process.ppid !== parentPid) stop(0);
}, 1000).unref();
