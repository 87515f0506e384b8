// blobd_shard.js - the njs half of blobd-sharded.conf (njs 0.7 or later).
//
// What it does, for nginx spreading GUIDs over several blobd instances:
//  - guid: the canonical form of the GUID a request is about, the key that
//    picks the shard and the GUID put in the URI sent there;
//  - shardUpstream / shardUri: the per-instance routes /shard/<n>/...;
//  - list, flush, ready: answers that need every shard (a merged listing,
//    a flush of every shard, readiness of every shard).
//
// Invariants:
//  S1. A GUID is accepted in exactly the forms blobd accepts (32 hex
//      digits, or dashed 8-4-4-4-12, either case) and nothing else; it is
//      read from the path as the client sent it ($request_uri), never from
//      nginx's decoded and normalised $uri, so no spelling blobd would
//      refuse reaches a shard under another name.
//  S2. Every spelling of a GUID gives the same canonical form (32
//      lowercase hex digits), so it hashes to the same shard.
//  S3. The shard count comes from one variable, $blobd_shard_count, which
//      must match the blobd_shard_<n> upstreams of the configuration.

const HEX32 = /^[0-9a-f]{32}$/i;
const DASHED =
    /^([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})$/i;
const LIMIT_DEFAULT = 1000;
const LIMIT_MAX = 10000;

// The canonical form of a GUID string, or '' when it is not one (S1, S2).
function canonical(s) {
    if (HEX32.test(s)) {
        return s.toLowerCase();
    }
    const m = DASHED.exec(s);
    if (m) {
        return (m[1] + m[2] + m[3] + m[4] + m[5]).toLowerCase();
    }
    return '';
}

// The path of the request target as the client sent it.
function rawPath(r) {
    const uri = r.variables.request_uri || '';
    const q = uri.indexOf('?');
    return q < 0 ? uri : uri.substring(0, q);
}

// js_set $blobd_guid: the canonical GUID of /blobs/{guid}; for POST /blobs
// the GUID the proxy chooses for it ($request_id: 128 random bits, already
// 32 lowercase hex digits); '' for anything else.
function guid(r) {
    const path = rawPath(r);
    if (path === '/blobs' && r.method === 'POST') {
        return r.variables.request_id;
    }
    if (path.substring(0, 7) !== '/blobs/') {
        return '';
    }
    return canonical(path.substring(7));
}

function shardCount(r) {
    const n = parseInt(r.variables.blobd_shard_count, 10);
    return n > 0 ? n : 0;
}

// The shard number of /shard/<n>/..., or -1.
function shardNumber(r) {
    const m = /^\/shard\/(0|[1-9][0-9]{0,3})\//.exec(rawPath(r));
    if (!m) {
        return -1;
    }
    const n = parseInt(m[1], 10);
    return n < shardCount(r) ? n : -1;
}

// js_set $blobd_shard_upstream: the upstream of /shard/<n>/..., or ''.
function shardUpstream(r) {
    const n = shardNumber(r);
    return n < 0 ? '' : 'blobd_shard_' + n;
}

// js_set $blobd_shard_uri: what follows /shard/<n> in the request target,
// query included, as the client sent it; '' when it is refused: writes to
// blobs go through /blobs, which picks the shard, never to a chosen one.
function shardUri(r) {
    const uri = r.variables.request_uri || '';
    const m = /^\/shard\/[0-9]+(\/.*)$/.exec(uri);
    if (!m) {
        return '';
    }
    const rest = m[1];
    const q = rest.indexOf('?');
    const path = q < 0 ? rest : rest.substring(0, q);
    const isBlobs = path === '/blobs' || path.substring(0, 7) === '/blobs/';
    if (isBlobs && r.method !== 'GET' && r.method !== 'HEAD') {
        return '';
    }
    return rest;
}

function sendJson(r, status, doc) {
    r.headersOut['Content-Type'] = 'application/json';
    if (status === 503) {
        r.headersOut['Retry-After'] = '1';
    }
    r.return(status, JSON.stringify(doc));
}

function sendError(r, status, code, message) {
    sendJson(r, status, {error: code, message: message});
}

function notAllowed(r, allow) {
    r.headersOut['Allow'] = allow;
    sendError(r, 405, 'method_not_allowed',
              'the method is not allowed on this resource');
}

// One subrequest per shard, in shard order, to /_blobd/shard/<n><path>.
// The shard that cannot be reached answers 502 (nginx's own status).
function fanOut(r, method, path, args) {
    const all = [];
    for (let i = 0; i < shardCount(r); i++) {
        all.push(r.subrequest('/_blobd/shard/' + i + path,
                              {method: method, args: args, body: ''}));
    }
    return Promise.all(all);
}

function parseReply(reply) {
    try {
        return JSON.parse(reply.responseText);
    } catch (e) {
        return null;
    }
}

// Pass on a shard's refusal of the request itself (a bad query, a missing
// or weak token): every shard would refuse it alike.  True if it did.
function relayRefusal(r, reply) {
    if (reply.status < 400 || reply.status >= 500 || !parseReply(reply)) {
        return false;
    }
    const auth = reply.headersOut['WWW-Authenticate'];
    if (auth) {
        r.headersOut['WWW-Authenticate'] = auth;
    }
    r.headersOut['Content-Type'] = 'application/json';
    r.return(reply.status, reply.responseText);
    return true;
}

// The first shard that did not answer `want`, as an index, or -1.
function firstFailure(replies, want) {
    for (let i = 0; i < replies.length; i++) {
        if (replies[i].status !== want) {
            return i;
        }
    }
    return -1;
}

// GET /blobs: one listing page over every shard.  Each shard lists its
// own GUIDs in order after `after`; the first `limit` of the union, in
// GUID order, are the page; more remain when the union had more or a shard
// said it had more.  Every shard must answer: a listing with a hole in it
// would look complete.
async function list(r) {
    if (r.method !== 'GET') {
        notAllowed(r, 'GET, POST');
        return;
    }
    const replies = await fanOut(r, 'GET', '/blobs', r.variables.args || '');
    const bad = firstFailure(replies, 200);
    if (bad >= 0) {
        const st = replies[bad].status;
        if (relayRefusal(r, replies[bad])) {
            return;
        }
        // A shard's own 503 (opening, draining) keeps its Retry-After.
        sendError(r, st === 503 ? 503 : 502, 'shard_unavailable',
                  'shard ' + bad + ' answered ' + st +
                      '; a listing needs every shard');
        return;
    }
    let blobs = [];
    let more = false;
    for (let i = 0; i < replies.length; i++) {
        const page = parseReply(replies[i]);
        if (!page || !Array.isArray(page.blobs)) {
            sendError(r, 502, 'shard_unavailable',
                      'shard ' + i + ' sent a listing that is not JSON');
            return;
        }
        blobs = blobs.concat(page.blobs);
        if (page.next) {
            more = true;
        }
    }
    // blobd has already refused a limit that is not a positive number.
    let limit = LIMIT_DEFAULT;
    let arg = r.args.limit;
    if (Array.isArray(arg)) {
        arg = arg[0];
    }
    if (arg !== undefined) {
        limit = Math.min(parseInt(arg, 10), LIMIT_MAX);
    }
    blobs.sort((a, b) => (a.guid < b.guid ? -1 : a.guid > b.guid ? 1 : 0));
    if (blobs.length > limit) {
        blobs = blobs.slice(0, limit);
        more = true;
    }
    const doc = {blobs: blobs};
    if (more && blobs.length > 0) {
        doc.next = blobs[blobs.length - 1].guid;
    }
    sendJson(r, 200, doc);
}

// POST /flush: a flush of every shard.  200 only when every shard
// flushed; the document adds up the shards' flush results and lists each.
async function flush(r) {
    if (r.method !== 'POST') {
        notAllowed(r, 'POST');
        return;
    }
    const replies = await fanOut(r, 'POST', '/flush', '');
    const bad = firstFailure(replies, 200);
    if (bad >= 0 && relayRefusal(r, replies[bad])) {
        return;
    }
    const shards = replies.map((reply, i) => {
        const doc = parseReply(reply) || {};
        doc.shard = i;
        doc.http_status = reply.status;
        return doc;
    });
    if (bad >= 0) {
        const st = replies[bad].status;
        sendJson(r, st >= 500 ? st : 502, {
            error: 'flush_failed',
            message: 'shard ' + bad + ' answered ' + st +
                         '; changes acknowledged by it may not be durable',
            shards: shards,
        });
        return;
    }
    const sum = {
        records: 0,
        log_bytes: 0,
        data_synced: 0,
        duration_seconds: 0,
        compaction_started: false,
    };
    shards.forEach((s) => {
        sum.records += s.records || 0;
        sum.log_bytes += s.log_bytes || 0;
        sum.data_synced = Math.max(sum.data_synced, s.data_synced || 0);
        sum.duration_seconds =
            Math.max(sum.duration_seconds, s.duration_seconds || 0);
        sum.compaction_started =
            sum.compaction_started || !!s.compaction_started;
    });
    sum.shards = shards;
    sendJson(r, 200, sum);
}

// GET /readyz: ready when every shard is ready.
async function ready(r) {
    if (r.method !== 'GET' && r.method !== 'HEAD') {
        notAllowed(r, 'GET, HEAD');
        return;
    }
    const replies = await fanOut(r, 'GET', '/readyz', '');
    const shards = replies.map((reply, i) => {
        const doc = parseReply(reply) || {};
        doc.shard = i;
        doc.http_status = reply.status;
        return doc;
    });
    const bad = firstFailure(replies, 200);
    if (bad >= 0) {
        sendJson(r, 503, {
            error: 'not_ready',
            message: 'shard ' + bad + ' is not ready (' + replies[bad].status +
                         ')',
            shards: shards,
        });
        return;
    }
    sendJson(r, 200, {status: 'ready', shards: shards});
}

export default {guid, shardUpstream, shardUri, list, flush, ready};
