#!/usr/bin/env python3
"""Seeds for the PDF fuzz targets: small, valid documents that reach what
random mutation reaches only slowly.

`pdf_open`: documents whose streams use every filter and predictor the
host decodes, in every place it decodes them. The fuzzer's own mutations
reach a filter's deep states (an inflater's dynamic Huffman tables, LZW's
code widths and table resets, PNG predictors' row types) only from the
bytes it happens to compress by chance. Each seed is one document: a page
whose content stream, ToUnicode map and embedded Type 1 font are filtered,
with its objects either in a classic cross-reference table or in object
streams indexed by a cross-reference stream, optionally encrypted (RC4 40
and 128, AES-128, AES-256 in revisions 5 and 6) with the empty user
password.

`parse_batch`: documents for the parser, a few font kinds to a page: every
simple-font encoding, glyph-name differences, embedded Type 1 encodings,
ToUnicode maps, Type 3, Type 0 fonts with Unicode, legacy CJK and embedded
CMap encodings, character collections and an embedded TrueType `cmap`;
every text operator, nested forms, inline images (`ID` and `EI` with
every white space and delimiter around them, and near misses),
right-to-left text; a CID font whose `/W` entries overwrite each other by
the dozen; every encoding, CMap and character collection name the reader
tells apart, and names one byte off them at every position; every lead
byte of each legacy CJK charset before trail bytes from each of its
ranges; lines that mix every bidirectional character class in random
runs.

Both also get mistyped documents: every key their reader looks up (the
trailer's, the page tree's, a stream's filters and parameters, the
security handler's; a font's, its encoding's, descriptor's and descendant
font's; a page's and a form's resources; the catalog's and the page
tree's in a document read by scanning), given a value of each object
type in turn, and references to a number, a stream and nothing. Each such
value fails the reader in its own place, an edge of its own, which random
mutation finds one at a time over hours. And documents that open with a
linearization dictionary, whole, then with each entry mistyped or missing;
and, for `pdf_open`, documents of many pages to rebuild by scanning.
`parse_batch` gets all of `pdf_open`'s seeds too: a batch the host did not
write (one `read_sequential` cannot read) goes to `lopdf`'s own loader,
whose filters, cross-reference streams, linearization and repair those
seeds reach (with the inline images, 10 of the 26 new edges in code
that run 39 found).

    seeds.py pdf_open|parse_batch OUT_DIR

writes the seeds into OUT_DIR, named by their content's hash, and prints
how many. Deterministic: the same seeds every run. Every seed but the
mistyped ones opens in pypdf (`pip install pypdf`) and its text extracts,
except where pypdf lacks the feature: predictors under LZW, `/EarlyChange
0`, TIFF prediction at 16 bits or under 8.
"""
import base64
import hashlib
import random
import re
import struct
import sys
import zlib
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


# -- filters ------------------------------------------------------------------


def lzw(data, early_change=1):
    """LZW as PDF writes it: 9 to 12 bit codes, MSB first, a clear code at
    the start and whenever the table fills, an end-of-data code."""
    table = {bytes([i]): i for i in range(256)}
    out, acc, bits = bytearray(), 0, 0
    width, next_code = 9, 258

    def put(code):
        nonlocal acc, bits
        acc = (acc << width) | code
        bits += width
        while bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)

    put(256)
    word = b""
    for byte in data:
        candidate = word + bytes([byte])
        if candidate in table:
            word = candidate
            continue
        put(table[word])
        table[candidate] = next_code
        next_code += 1
        word = bytes([byte])
        if next_code + early_change > (1 << width):
            if width == 12:
                put(256)
                table = {bytes([i]): i for i in range(256)}
                width, next_code = 9, 258
            else:
                width += 1
    if word:
        put(table[word])
    put(257)
    if bits:
        out.append((acc << (8 - bits)) & 0xFF)
    return bytes(out)


def run_length(data):
    out, i = bytearray(), 0
    while i < len(data):
        run = 1
        while i + run < len(data) and run < 128 and data[i + run] == data[i]:
            run += 1
        if run > 1:
            out += bytes([257 - run, data[i]])
            i += run
            continue
        start = i
        while i < len(data) and i - start < 128 and (
            i + 1 >= len(data) or data[i + 1] != data[i]
        ):
            i += 1
        i = max(i, start + 1)
        out += bytes([i - start - 1]) + data[start:i]
    return bytes(out + b"\x80")


def ascii_hex(data):
    text = data.hex().upper().encode()
    # Line breaks and an odd final digit: both are legal.
    return b"\n".join(text[i : i + 64] for i in range(0, len(text), 64)) + b">"


ENCODERS = {
    "FlateDecode": lambda d, p: zlib.compress(d, p.get("level", 6)),
    "LZWDecode": lambda d, p: lzw(d, p.get("EarlyChange", 1)),
    "ASCIIHexDecode": lambda d, p: ascii_hex(d),
    "ASCII85Decode": lambda d, p: base64.a85encode(d, wrapcol=72) + b"~>",
    "RunLengthDecode": lambda d, p: run_length(d),
}


def png_predict(data, columns, colors, bpc, rng, kind):
    """Rows with a filter-type byte each: `kind` 0-4, or None for a mix."""
    bpp = max(1, colors * bpc // 8)
    row_len = (columns * colors * bpc + 7) // 8
    out, prev = bytearray(), bytes(row_len)
    for r in range(0, len(data), row_len):
        row = data[r : r + row_len].ljust(row_len, b"\0")
        t = rng.randrange(5) if kind is None else kind
        enc = bytearray()
        for i, x in enumerate(row):
            a = row[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if t == 0:
                p = 0
            elif t == 1:
                p = a
            elif t == 2:
                p = b
            elif t == 3:
                p = (a + b) // 2
            else:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                p = a if pa <= pb and pa <= pc else b if pb <= pc else c
            enc.append((x - p) & 0xFF)
        out += bytes([t]) + enc
        prev = row
    return bytes(out)


def tiff_predict(data, columns, colors, bpc):
    """TIFF predictor 2, for 1, 2, 4, 8 and 16 bits per component: each
    sample less the one a pixel before it, modulo 2^bpc, packed MSB first
    into rows of whole bytes; a sub-byte row's last bits, padding, are kept
    as they are (as the decoder keeps them), so any data round-trips."""
    row_len = (columns * colors * bpc + 7) // 8
    count, mask = columns * colors, (1 << bpc) - 1
    pad = row_len * 8 - count * bpc
    out = bytearray()
    for r in range(0, len(data), row_len):
        row = int.from_bytes(data[r : r + row_len].ljust(row_len, b"\0"), "big")
        samples = [(row >> (pad + (count - 1 - i) * bpc)) & mask for i in range(count)]
        enc = 0
        for i, x in enumerate(samples):
            enc = (enc << bpc) | ((x - (samples[i - colors] if i >= colors else 0)) & mask)
        out += ((enc << pad) | (row & ((1 << pad) - 1))).to_bytes(row_len, "big")
    return bytes(out)


def pdf_name(name):
    return b"/" + name.encode()


def params_dict(params):
    keys = ("Predictor", "Columns", "Colors", "BitsPerComponent", "EarlyChange")
    items = [f"/{k} {params[k]}" for k in keys if k in params]
    return ("<< " + " ".join(items) + " >>").encode() if items else b"null"


def encode(data, chain, rng):
    """Applies `chain` (innermost filter last, as PDF lists them outermost
    first), returns the stream's content and its dictionary entries."""
    names, parms = [], []
    for name, params in reversed(chain):
        if "Predictor" in params:
            columns = params.get("Columns", 1)
            colors = params.get("Colors", 1)
            bpc = params.get("BitsPerComponent", 8)
            if params["Predictor"] == 2:
                data = tiff_predict(data, columns, colors, bpc)
            else:
                kind = params.get("kind")
                data = png_predict(data, columns, colors, bpc, rng, kind)
        data = ENCODERS[name](data, params)
        names.insert(0, name)
        parms.insert(0, params_dict(params))
    if not names:
        return data, b""
    if len(names) == 1:
        entries = b"/Filter " + pdf_name(names[0])
        if parms[0] != b"null":
            entries += b" /DecodeParms " + parms[0]
        return data, entries
    entries = b"/Filter [" + b" ".join(pdf_name(n) for n in names) + b"]"
    if any(p != b"null" for p in parms):
        entries += b" /DecodeParms [" + b" ".join(parms) + b"]"
    return data, entries


# -- encryption ---------------------------------------------------------------

PAD = bytes.fromhex(
    "28BF4E5E4E758A4164004E56FFFA01082E2E00B6D0683E802F0CA9FE6453697A"
)


def rc4(key, data):
    s, j = list(range(256)), 0
    for i in range(256):
        j = (j + s[i] + key[i % len(key)]) % 256
        s[i], s[j] = s[j], s[i]
    out, i, j = bytearray(), 0, 0
    for byte in data:
        i = (i + 1) % 256
        j = (j + s[i]) % 256
        s[i], s[j] = s[j], s[i]
        out.append(byte ^ s[(s[i] + s[j]) % 256])
    return bytes(out)


def rc4_rounds(key, data):
    """Revision 3's 19 more passes, each under the key XORed with its number."""
    for i in range(1, 20):
        data = rc4(bytes(b ^ i for b in key), data)
    return data


class Standard:
    """The standard security handler, revisions 2, 3 and 4, empty user
    password, a fixed owner password."""

    def __init__(self, revision, doc_id):
        self.revision = revision
        self.n = 5 if revision == 2 else 16
        self.aes = revision == 4
        self.p = -3904
        owner = hashlib.md5(b"owner".ljust(32, b"\0")[:32]).digest()
        if revision >= 3:
            for _ in range(50):
                owner = hashlib.md5(owner[: self.n]).digest()
        o = rc4(owner[: self.n], PAD)
        if revision >= 3:
            o = rc4_rounds(owner[: self.n], o)
        self.o = o
        key = hashlib.md5(PAD + o + struct.pack("<i", self.p) + doc_id).digest()
        if revision >= 3:
            for _ in range(50):
                key = hashlib.md5(key[: self.n]).digest()
        self.key = key[: self.n]
        if revision == 2:
            self.u = rc4(self.key, PAD)
        else:
            u = rc4(self.key, hashlib.md5(PAD + doc_id).digest())
            u = rc4_rounds(self.key, u)
            self.u = u + bytes(16)

    def dictionary(self):
        o, u = self.o.hex().encode(), self.u.hex().encode()
        head = {2: b"/V 1 /R 2", 3: b"/V 2 /R 3 /Length 128", 4: b"/V 4 /R 4 /Length 128"}
        extra = b""
        if self.aes:
            extra = (
                b" /CF << /StdCF << /CFM /AESV2 /Length 16 /AuthEvent /DocOpen >> >>"
                b" /StmF /StdCF /StrF /StdCF"
            )
        return (
            b"<< /Filter /Standard " + head[self.revision] + extra
            + b" /O <" + o + b"> /U <" + u + b"> /P " + str(self.p).encode() + b" >>"
        )

    def seal(self, num, gen, data):
        salt = b"sAlT" if self.aes else b""
        key = hashlib.md5(
            self.key + num.to_bytes(3, "little") + gen.to_bytes(2, "little") + salt
        ).digest()[: min(self.n + 5, 16)]
        if not self.aes:
            return rc4(key, data)
        return aes_sealed(key, data)


def aes(key, iv, data):
    """AES-CBC under `iv`, or ECB when it is `None`; no padding."""
    mode = modes.CBC(iv) if iv is not None else modes.ECB()
    op = Cipher(algorithms.AES(key), mode).encryptor()
    return op.update(data) + op.finalize()


def aes_sealed(key, data):
    """A string or stream as AESV2 and AESV3 store it: an IV (derived from
    the data, so seeds stay deterministic), then CBC with PKCS#5 padding."""
    iv = hashlib.md5(b"iv" + key + data).digest()
    pad = 16 - len(data) % 16
    return iv + aes(key, iv, data + bytes([pad]) * pad)


def hash_2b(password, salt, udata, revision):
    """The password hash of revisions 5 (one SHA-256) and 6 (algorithm 2.B)."""
    k = hashlib.sha256(password + salt + udata).digest()
    if revision == 5:
        return k
    i = 0
    while True:
        e = aes(k[:16], k[16:32], (password + k + udata) * 64)
        k = (hashlib.sha256, hashlib.sha384, hashlib.sha512)[sum(e[:16]) % 3](e).digest()
        i += 1
        if i >= 64 and e[-1] <= i - 32:
            return k[:32]


class Aes256:
    """The standard security handler, revisions 5 and 6 (AES-256), empty
    user password, a fixed owner password."""

    def __init__(self, revision, doc_id):
        self.revision = revision
        self.p = -3904
        seed = hashlib.sha512(doc_id + bytes([revision])).digest()
        self.key = seed[:32]
        uvs, uks, ovs, oks = (seed[32 + 8 * i : 40 + 8 * i] for i in range(4))
        self.u = hash_2b(b"", uvs, b"", revision) + uvs + uks
        self.ue = aes(hash_2b(b"", uks, b"", revision), bytes(16), self.key)
        self.o = hash_2b(b"owner", ovs, self.u, revision) + ovs + oks
        self.oe = aes(hash_2b(b"owner", oks, self.u, revision), bytes(16), self.key)
        perms = struct.pack("<i", self.p) + b"\xff\xff\xff\xffTadb" + seed[:4]
        self.perms = aes(self.key, None, perms)

    def dictionary(self):
        hexes = [v.hex().encode() for v in (self.o, self.u, self.oe, self.ue, self.perms)]
        return (
            b"<< /Filter /Standard /V 5 /R %d /Length 256" % self.revision
            + b" /CF << /StdCF << /CFM /AESV3 /Length 32 /AuthEvent /DocOpen >> >>"
            + b" /StmF /StdCF /StrF /StdCF /O <%s> /U <%s> /OE <%s> /UE <%s> /Perms <%s>" % tuple(hexes)
            + b" /P %d >>" % self.p
        )

    def seal(self, num, gen, data):
        return aes_sealed(self.key, data)


# -- documents ----------------------------------------------------------------


def type1_font(rng, size):
    clear = (
        b"%!PS-AdobeFont-1.0: Seed 001\n/FontName /Seed def\n"
        b"/Encoding StandardEncoding def\ncurrentfile eexec\n"
    )
    return clear + bytes(rng.randrange(256) for _ in range(size)) + b"0" * 64 + b"\ncleartomark\n", len(clear)


def content(rng, pages_text):
    ops = [b"BT /F1 12 Tf 72 720 Td"]
    for i, word in enumerate(pages_text):
        ops.append(b"(%s) Tj 0 -14 Td" % word)
        if i % 7 == 0:
            ops.append(b"[(%s) -250 (%s)] TJ" % (word, word[::-1]))
    ops.append(b"ET")
    for _ in range(rng.randrange(4, 40)):
        ops.append(b"%d %d %d %d re f" % tuple(rng.randrange(600) for _ in range(4)))
    return b"\n".join(ops)


TO_UNICODE = b"""/CIDInit /ProcSet findresource begin 12 dict begin begincmap
/CMapName /Seed def 1 begincodespacerange <00> <FF> endcodespacerange
2 beginbfchar <41> <0041> <42> <00420301> endbfchar
1 beginbfrange <61> <7A> <0061> endbfrange endcmap end end"""


HEADER = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"


def write_objects(objects, out=HEADER):
    """`out` (the header unless given) and `objects` after it in number
    order; their offsets."""
    out, offsets = bytearray(out), {}
    for num in sorted(objects):
        offsets[num] = len(out)
        out += b"%d 0 obj\n%s\nendobj\n" % (num, objects[num])
    return out, offsets


def classic(objects, trailer_extra=b"", edit=lambda where, body: body):
    """`objects` (number -> body; 1 is the catalog) under a classic
    cross-reference table; numbers missing are free. `edit` may change the
    trailer (`where` "trailer") before it is written."""
    out, offsets = write_objects(objects)
    size = max(objects) + 1
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    for num in range(1, size):
        if num in offsets:
            out += b"%010d 00000 n \n" % offsets[num]
        else:
            out += b"0000000000 65535 f \n"
    trailer = edit("trailer", b"<< /Size %d /Root 1 0 R%s >>" % (size, trailer_extra))
    out += b"trailer\n%s\nstartxref\n%d\n%%%%EOF\n" % (trailer, xref)
    return bytes(out)


def object_stream_content(nums, objects):
    """An object stream's header (number and offset of each object) and
    the objects `nums` of `objects` after it, before any filter."""
    body, index = bytearray(), []
    for n in nums:
        index.append(len(body))
        body += objects[n] + b"\n"
    header = b" ".join(b"%d %d" % (n, off) for n, off in zip(nums, index)) + b"\n"
    return header, bytes(body)


def document(rng, chain, xref_stream, xref_chain, crypt_revision, edit=lambda where, body: body):
    """A one-page document with its streams under `chain`, its
    cross-reference as a table or (under `xref_chain`) a stream with the
    dictionaries in an object stream, encrypted by `crypt_revision` if
    given. `edit(where, body)` may change any object's dictionary (`where`
    its number) or the trailer (`where` "trailer") before it is written."""
    words = [
        bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz ") for _ in range(rng.randrange(3, 30)))
        for _ in range(rng.randrange(5, 60))
    ]
    # Enough unrepeated bytes, alone under LZW, to fill its table and reset it.
    lzw_alone = [name for name, _ in chain] == ["LZWDecode"]
    font, length1 = type1_font(rng, 4400 if lzw_alone else 400)
    doc_id = hashlib.md5(repr((chain, xref_stream, crypt_revision)).encode()).digest()
    handler = Standard if crypt_revision in (2, 3, 4) else Aes256
    crypt = handler(crypt_revision, doc_id) if crypt_revision else None
    streams = {4: content(rng, words), 6: TO_UNICODE, 7: font}
    extra = {7: b"/Length1 %d /Length2 %d /Length3 0" % (length1, len(font) - length1 - 77)}
    dicts = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        3: b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        5: b"<< /Type /Font /Subtype /Type1 /BaseFont /Seed /ToUnicode 6 0 R"
        b" /FontDescriptor 8 0 R >>",
        8: b"<< /Type /FontDescriptor /FontName /Seed /Flags 32 /FontFile 7 0 R >>",
    }
    objects = {}
    for num, data in streams.items():
        body, entries = encode(data, chain, rng)
        if crypt:
            body = crypt.seal(num, 0, body)
        head = edit(num, b"<< /Length %d %s %s >>" % (len(body), entries, extra.get(num, b"")))
        objects[num] = head + b"\nstream\n" + body + b"\nendstream"
    trailer_extra = b" /ID [<%s> <%s>]" % (doc_id.hex().encode(), doc_id.hex().encode())
    if crypt:
        objects[9] = edit(9, crypt.dictionary())
        trailer_extra += b" /Encrypt 9 0 R"
    dicts = {num: edit(num, body) for num, body in dicts.items()}
    if not xref_stream:
        objects.update(dicts)
        return classic(objects, trailer_extra, edit)
    # Plain dictionaries go into an object stream (never the encryption
    # dictionary, which must stay outside); streams stay outside it.
    inside = sorted(dicts)
    header, body = object_stream_content(inside, dicts)
    objstm_num = 10
    packed, entries = encode(header + body, chain, rng)
    if crypt:
        packed = crypt.seal(objstm_num, 0, packed)
    objects[objstm_num] = (
        edit(objstm_num, b"<< /Type /ObjStm /N %d /First %d /Length %d %s >>"
             % (len(inside), len(header), len(packed), entries))
        + b"\nstream\n"
        + packed
        + b"\nendstream"
    )
    out, offsets = write_objects(objects)
    xref_num = objstm_num + 1
    size = xref_num + 1
    offsets[xref_num] = len(out)
    rows = bytearray()
    for num in range(size):
        if num == 0 or (num not in inside and num not in offsets):
            rows += bytes([0, 0, 0, 0, 0xFF, 0xFF])
        elif num in inside:
            rows += bytes([2]) + objstm_num.to_bytes(3, "big") + inside.index(num).to_bytes(2, "big")
        else:
            rows += bytes([1]) + offsets[num].to_bytes(3, "big") + bytes(2)
    # A cross-reference stream is never encrypted.
    packed, entries = encode(bytes(rows), xref_chain, rng)
    out += (
        b"%d 0 obj\n" % xref_num
        + edit("trailer", b"<< /Type /XRef /Size %d /W [1 3 2] /Root 1 0 R%s /Length %d %s >>"
               % (size, trailer_extra, len(packed), entries))
        + b"\nstream\n"
        + packed
        + b"\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n" % offsets[xref_num]
    )
    return bytes(out)


def chains():
    """Every filter alone, at its interesting settings, and in chains."""
    flate = [("FlateDecode", {"level": lvl}) for lvl in (0, 1, 6, 9)]
    lzws = [("LZWDecode", {"EarlyChange": e}) for e in (1, 0)]
    ascii_ = [("ASCIIHexDecode", {}), ("ASCII85Decode", {}), ("RunLengthDecode", {})]
    single = [[f] for f in flate + lzws + ascii_]
    predicted = []
    for pred in (2, 10, 11, 12, 13, 14, 15):
        for colors, bpc in ((1, 8), (3, 8), (1, 16), (4, 8)):
            params = {"Predictor": pred, "Columns": 17, "Colors": colors, "BitsPerComponent": bpc}
            if pred != 15 and pred != 2:
                params["kind"] = pred - 10
            predicted.append([("FlateDecode", dict(params, level=6))])
            # The same rows under LZW; the four-colour ones with the code
            # width switching a code late (EarlyChange 0), the rest early.
            early = 0 if colors == 4 else 1
            predicted.append([("LZWDecode", dict(params, EarlyChange=early))])
        predicted.append([("LZWDecode", {"Predictor": pred, "Columns": 5, "EarlyChange": 1})])
    chained = [
        [("ASCII85Decode", {}), ("FlateDecode", {"level": 9})],
        [("ASCIIHexDecode", {}), ("LZWDecode", {"EarlyChange": 0})],
        [("ASCII85Decode", {}), ("RunLengthDecode", {})],
        [("ASCIIHexDecode", {}), ("ASCII85Decode", {}), ("FlateDecode", {"level": 1})],
    ]
    # Sub-byte TIFF prediction: rows that end in padding bits, a component
    # count that does not divide a byte.
    subbyte = [
        [("FlateDecode", {"level": 6, "Predictor": 2, "Columns": columns, "Colors": colors, "BitsPerComponent": bpc})]
        for columns, colors, bpc in ((17, 1, 1), (9, 3, 2), (7, 1, 4), (5, 2, 4), (3, 5, 1))
    ]
    return single + predicted + chained + subbyte


# -- parse_batch: fonts, encodings, text operators --------------------------


class Objects:
    """A document under construction: numbered objects, 1 the catalog and 2
    the page tree."""

    def __init__(self):
        self.bodies = {}
        self.pages = []

    def add(self, body):
        num = len(self.bodies) + 3
        self.bodies[num] = body
        return num

    def stream(self, data, entries=b"", chain=(("FlateDecode", {"level": 6}),)):
        body, filters = encode(data, list(chain), None)
        return self.add(
            b"<< /Length %d %s %s >>\nstream\n" % (len(body), filters, entries)
            + body
            + b"\nendstream"
        )

    def page(self, content, fonts, xobjects=b""):
        names = b" ".join(b"/F%d %d 0 R" % (i + 1, f) for i, f in enumerate(fonts))
        contents = self.stream(content)
        self.pages.append(
            self.add(
                b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R"
                b" /Resources << /Font << %s >> %s >> >>" % (contents, names, xobjects)
            )
        )

    def pdf(self):
        kids = b" ".join(b"%d 0 R" % p for p in self.pages)
        objects = dict(self.bodies)
        objects[1] = b"<< /Type /Catalog /Pages 2 0 R >>"
        objects[2] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(self.pages))
        return classic(objects)


def hexstr(data):
    return b"<" + data.hex().encode() + b">"


def cmap_stream(entries, codespace=b"<00> <FF>", usecmap=b""):
    return (
        b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap\n"
        b"/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
        b"/CMapName /Seed-UCS def /CMapType 2 def\n" + usecmap
        + b"1 begincodespacerange " + codespace + b" endcodespacerange\n"
        + entries + b"\nendcmap CMapName currentdict /CMap defineresource pop end end"
    )


def encoding_cmap(name, codespace, entries, usecmap=b""):
    """An embedded CMap for a Type 0 font's /Encoding: `codespace` a list
    of `<lo> <hi>` pairs, `entries` its cidrange and cidchar blocks."""
    return (
        b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap\n"
        b"/CMapName /" + name + b" def /CMapType 1 def" + (b" " + usecmap if usecmap else b"") + b"\n"
        + b"%d begincodespacerange " % len(codespace) + b" ".join(codespace) + b" endcodespacerange\n"
        + entries + b"\nendcmap end end"
    )


def show(strings, rng):
    """A text object showing `strings` through every text operator."""
    ops = [b"BT /F1 11 Tf 14 TL 72 740 Td"]
    for i, s in enumerate(strings):
        op = i % 8
        if op == 0:
            ops.append(s + b" Tj")
        elif op == 1:
            ops.append(b"[%s -120 %s 300] TJ" % (s, s))
        elif op == 2:
            ops.append(s + b" '")
        elif op == 3:
            ops.append(b"2 1 %s \"" % s)
        elif op == 4:
            ops.append(b"0.5 Tc 3 Tw 90 Tz 2 Ts T* %s Tj 0 Tc 0 Tw 100 Tz 0 Ts" % s)
        elif op == 5:
            ops.append(b"1 0 0 1 72 %d Tm %s Tj" % (rng.randrange(80, 700), s))
        elif op == 6:
            ops.append(b"0 -20 TD %s Tj" % s)
        else:
            ops.append(b"ET q 0 1 -1 0 300 300 cm BT /F1 9 Tf %s Tj ET Q BT /F1 11 Tf" % s)
    ops.append(b"ET")
    return b"\n".join(ops)


def simple_fonts(doc, rng):
    """Simple fonts, each with the strings to show with it."""
    fonts = []
    latin = bytes(range(32, 127)) + bytes(range(128, 256))
    for base, enc in (
        (b"Helvetica", b"/Encoding /WinAnsiEncoding"),
        (b"Times-Roman", b"/Encoding /MacRomanEncoding"),
        (b"Courier", b"/Encoding /StandardEncoding"),
        (b"Symbol", b""),
        (b"ZapfDingbats", b""),
        (b"Helvetica-Bold", b"/Encoding /PDFDocEncoding"),
    ):
        f = doc.add(b"<< /Type /Font /Subtype /Type1 /BaseFont /%s %s >>" % (base, enc))
        fonts.append((f, [hexstr(latin[i : i + 24]) for i in range(0, len(latin), 24)]))
    diffs = (
        b"[1 /uni0041 /u1F600 /u10FFFF /uniD800 /fi /ffl /dotlessi /compwordmark"
        b" /afii10017 /Aacute.sc /g123 /quoteleft /quoteright /alpha /.notdef"
        b" 65 /B /C 200 /Euro /visiblespace /zcaron /uni00410301 /u12 /f_i]"
    )
    for base in (b"/BaseEncoding /StandardEncoding ", b"/BaseEncoding /WinAnsiEncoding ", b""):
        widths = b" ".join(b"%d" % rng.randrange(0, 1200) for _ in range(224))
        f = doc.add(
            b"<< /Type /Font /Subtype /TrueType /BaseFont /Seed /FirstChar 0 /LastChar 223"
            b" /Widths [%s] /Encoding << /Type /Encoding %s /Differences %s >> >>"
            % (widths, base, diffs)
        )
        fonts.append((f, [hexstr(bytes(range(0, 27))), b"(AB C\\310\\311 fi)", b"(\\101\\102\\103)"]))
    # An embedded Type 1 program's own encoding, alone and under differences.
    program = (
        b"%!PS-AdobeFont-1.0: Seed\n/Encoding 256 array\n0 1 255 {1 index exch /.notdef put} for\n"
        b"dup 65 /Alpha put\ndup 66 /uni05D0 put\ndup 67 /germandbls put\ndup 300 /A put\n"
        b"dup 68 /fi put\nreadonly def\ncurrentfile eexec\n"
    )
    body = program + bytes(rng.randrange(256) for _ in range(64)) + b"\n" + b"0" * 64 + b"\ncleartomark\n"
    for enc in (b"", b"/Encoding << /Differences [67 /ccedilla] >>"):
        file_ = doc.stream(body, b"/Length1 %d /Length2 %d /Length3 0" % (len(program), len(body) - len(program)))
        desc = doc.add(b"<< /Type /FontDescriptor /FontName /Seed /Flags 4 /FontFile %d 0 R >>" % file_)
        f = doc.add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Seed %s /FontDescriptor %d 0 R >>" % (enc, desc))
        fonts.append((f, [b"(ABCDE)", b"(ABC ABC)"]))
    # ToUnicode: single codes, ranges, range arrays, ligatures, and codes
    # it lacks (the encoding answers for those).
    tu = doc.stream(cmap_stream(
        b"3 beginbfchar <41> <0041> <42> <D83DDE00> <43> <00660069> endbfchar\n"
        b"2 beginbfrange <61> <7A> <0061> <30> <32> [<0661> <0662> <0663>] endbfrange"
    ))
    f = doc.add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding /ToUnicode %d 0 R >>" % tu)
    fonts.append((f, [b"(ABC abc 012 \\344\\366)", b"(xyz XYZ)"]))
    # Type 3: glyphs drawn by procedures, widths in glyph space.
    procs = doc.add(b"<< /a %d 0 R /b %d 0 R >>" % (doc.stream(b"500 0 d0 0 0 500 500 re f"), doc.stream(b"600 0 0 0 600 600 d1")))
    f = doc.add(
        b"<< /Type /Font /Subtype /Type3 /FontBBox [0 0 1000 1000] /FontMatrix [0.001 0 0 0.001 0 0]"
        b" /CharProcs %d 0 R /Encoding << /Type /Encoding /Differences [97 /a /b] >>"
        b" /FirstChar 97 /LastChar 98 /Widths [500 600] /Resources << >> >>" % procs
    )
    fonts.append((f, [b"(abab ba)", b"(aaa)"]))
    return fonts


def type0_font(doc, encoding, descendant_extra=b"", to_unicode=b"", ordering=b"Identity", kind=b"CIDFontType2"):
    """A Type 0 font under `encoding` (a name or a reference) over a CID
    font of kind `kind` (TrueType-based, or CFF-based with CIDFontType0)
    in the Adobe collection `ordering`."""
    desc = doc.add(
        b"<< /Type /Font /Subtype /%s /BaseFont /Seed /CIDSystemInfo"
        b" << /Registry (Adobe) /Ordering (%s) /Supplement 0 >> %s >>" % (kind, ordering, descendant_extra)
    )
    return doc.add(
        b"<< /Type /Font /Subtype /Type0 /BaseFont /Seed /Encoding %s /DescendantFonts [%d 0 R] %s >>"
        % (encoding, desc, to_unicode)
    )


def named_fonts(doc, rng):
    """Fonts under every encoding, CMap and character collection name the
    reader tells apart, and names that nearly match them."""
    fonts = []
    legacy = hexstr(bytes([0x41, 0x81, 0x40, 0x9F, 0xFC, 0xE0, 0x40, 0xA1, 0xA1, 0xFE, 0xFE, 0x80, 0xFF, 0x20, 0x81]))
    latin = hexstr(bytes(range(0x20, 0x100, 3)))
    for name in (b"StandardEncoding", b"MacRomanEncoding", b"MacExpertEncoding", b"WinAnsiEncoding",
                 b"PDFDocEncoding", b"Identity-H", b"Identity-V", b"SymbolEncoding", b"WinAnsi", b"Custom"):
        f = doc.add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Times-Roman /Encoding /%s >>" % name)
        g = doc.add(b"<< /Type /Font /Subtype /TrueType /BaseFont /Seed /Encoding << /BaseEncoding /%s"
                    b" /Differences [65 /B /Adieresis] >> >>" % name)
        fonts += [(f, [latin]), (g, [latin])]
    for name in (b"GBpc-EUC-H", b"GBT-EUC-V", b"GBK2K-H", b"GB-H", b"ETHK-B5-H", b"HKscs-B5-V", b"ETen-B5-V",
                 b"B5-H", b"UniCNS-UCS2-H", b"UniKS-UCS2-V", b"UniJIS-UTF16-V", b"UniGB-UTF32-H", b"UniJIS-UTF8-H",
                 b"83pv-RKSJ-H", b"90msp-RKSJ-V", b"EUC-V", b"KSCms-UHC-H", b"KSC-Johab-H", b"Identity-V",
                 b"Identity", b"H", b"V", b"Adobe-Japan1-6"):
        f = type0_font(doc, b"/" + name, ordering=b"Japan1", kind=b"CIDFontType0")
        fonts.append((f, [legacy, hexstr(b"\xd8\x3d\xde\x00\xdc\x00\x00")]))
    cids = hexstr(b"".join(struct.pack(">H", c) for c in (1, 100, 1000, 8000, 20000, 65535)))
    for ordering in (b"GB1", b"CNS1", b"Japan1", b"Korea1", b"KR", b"GB", b"CNS2", b"Japan2", b"Korea",
                     b"K", b"Identity", b"UCS", b""):
        fonts.append((type0_font(doc, b"/Identity-H", ordering=ordering), [cids]))
    # An embedded CMap with codes of one to four bytes.
    enc = doc.stream(encoding_cmap(
        b"Seed-Mixed",
        [b"<00> <3F>", b"<4000> <7FFF>", b"<800000> <BFFFFF>", b"<C0000000> <FFFFFFFF>"],
        b"4 begincidrange <00> <3F> 1 <4000> <40FF> 100 <800000> <8000FF> 1000 <C0000000> <C00000FF> 2000"
        b" endcidrange",
    ))
    f = type0_font(doc, b"%d 0 R" % enc, ordering=b"Japan1")
    fonts.append((f, [hexstr(bytes([0x01, 0x40, 0x05, 0x80, 0x00, 0x07, 0xC0, 0, 0, 9, 0x3F, 0xC0, 0, 0])),
                      hexstr(bytes([0xC0, 0, 0]))]))
    # An embedded CMap with a long range list out of order: sorting it
    # leaves the small-slice sort for the full one (fuzz run 31 reached
    # that path by mutation alone, opening 49 edges at once).
    order = [k * 37 % 101 for k in range(101)]
    ranges = b" ".join(b"<%04X> <%04X> %d" % (k << 8, (k << 8) | 0xFF, k * 256 + 1) for k in order)
    enc = doc.stream(encoding_cmap(
        b"Seed-Unordered", [b"<0000> <FFFF>"], b"101 begincidrange " + ranges + b" endcidrange"))
    f = type0_font(doc, b"%d 0 R" % enc, ordering=b"Japan1")
    fonts.append((f, [hexstr(bytes([0x00, 0x41, 0x25, 0x10, 0x64, 0xFF]))]))
    # Lists in the orders that take a sort down its other paths, each as
    # the encoding's cidrange list and as a ToUnicode bfchar list (fuzz run
    # 33 opened 29 edges in the sort of a cidrange list in its last 30
    # minutes). They draw from a generator of their own, so `rng`'s draws,
    # and with them every other seed, stay as they were. A range is
    # (low, high, CID), compared field by field; `k`'s bits are spread over
    # the three, so sixteen ranges share each low code and four each low
    # and high code, and every order also reaches a comparison's later
    # fields (run 35 found those branches late).
    def tied_range(k):
        low = (k >> 4) << 6
        return low, low | (k >> 2 & 3) << 4 | 0xF, (k & 3) * 1000 + 1

    for label, order in sort_orders(random.Random(33)):
        ranges = b" ".join(b"<%04X> <%04X> %d" % tied_range(k) for k in order)
        chars = b" ".join(b"<%04X> <%04X>" % (k << 6, 0x4E00 + k) for k in order)
        enc = doc.stream(encoding_cmap(
            b"Seed-" + label, [b"<0000> <FFFF>"], b"%d begincidrange " % len(order) + ranges + b" endcidrange"))
        tu = doc.stream(cmap_stream(b"%d beginbfchar " % len(order) + chars + b" endbfchar",
                                    codespace=b"<0000> <FFFF>"))
        f = type0_font(doc, b"%d 0 R" % enc, to_unicode=b"/ToUnicode %d 0 R" % tu, ordering=b"Japan1")
        fonts.append((f, [hexstr(bytes([0x00, 0x41, 0x25, 0x10, 0x64, 0xFF, 0xFF, 0xC0]))]))
    return fonts


def sort_orders(rng):
    """Orders of the numbers below 256 (1,024 when shuffled) that a sort
    treats differently: descending, sorted but for a shuffled tail,
    ascending then descending, shuffled, and a few values repeated."""
    tail = list(range(200, 256))
    rng.shuffle(tail)
    shuffled = list(range(1024))
    rng.shuffle(shuffled)
    return [
        (b"Descending", list(range(255, -1, -1))),
        (b"Tail", list(range(200)) + tail),
        (b"Pipe", list(range(0, 256, 2)) + list(range(255, 0, -2))),
        (b"Shuffled", shuffled),
        (b"Repeated", [rng.choice((3, 7, 11, 200, 250)) for _ in range(300)]),
    ]


def near_miss_fonts(doc, rng):
    """Fonts under names one byte away from each name the readers compare
    against, at every position: a comparison of names is a chain of
    branches, one for each byte (or word) that matches."""

    def near(name):
        return [name[:k] + bytes([name[k] ^ 1]) + name[k + 1:] for k in range(len(name))]

    def token(name):  # as a PDF name's bytes, delimiters escaped
        return b"".join(b"#%02X" % c if chr(c) in "()<>[]{}/%#" or c <= 32 or c > 126 else bytes([c]) for c in name)

    fonts = []
    latin = hexstr(bytes(range(0x20, 0x100, 5)))
    for name in (b"StandardEncoding", b"MacRomanEncoding", b"MacExpertEncoding", b"WinAnsiEncoding",
                 b"PDFDocEncoding", b"Identity-H", b"Identity-V", b"UniGB-UCS2-H", b"UniGB-UTF16-H"):
        for odd in near(name):
            fonts.append((doc.add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /%s >>"
                                  % token(odd)), [latin]))
    cids = hexstr(b"\x00\x01\x03\xe8\x4e\x20\x81\x40\xa1\xa1")
    for name in (b"Identity-H", b"UniJIS-UCS2-H", b"UniGB-UTF16-H", b"GBK-EUC-H", b"GB-EUC-H", b"GBpc-EUC-H",
                 b"GBT-EUC-H", b"B5pc-H", b"ETen-B5-H", b"HKscs-B5-H", b"ETHK-B5-H", b"90ms-RKSJ-H", b"EUC-H",
                 b"KSC-EUC-H"):
        for odd in near(name):
            fonts.append((type0_font(doc, b"/" + token(odd), ordering=b"Japan1", kind=b"CIDFontType0"), [cids]))
    for ordering in (b"GB1", b"CNS1", b"Japan1", b"Korea1", b"KR"):
        for odd in near(ordering):
            fonts.append((type0_font(doc, b"/Identity-H", ordering=odd), [cids]))
    return fonts


def legacy_code_fonts(doc, rng):
    """A font for each legacy CJK charset the reader decodes, showing every
    lead byte before trail bytes from each range its decoder tells apart."""
    trails = (0x00, 0x20, 0x30, 0x39, 0x40, 0x7E, 0x7F, 0x80, 0xA0, 0xA1, 0xDF, 0xE0, 0xFE, 0xFF)
    codes = [bytes([lead, trail]) for lead in range(0x80, 0x100) for trail in trails]
    fonts = []
    for name in (b"GBK-EUC-H", b"B5pc-H", b"90ms-RKSJ-H", b"EUC-H", b"KSC-EUC-H"):
        f = type0_font(doc, b"/" + name, ordering=b"Japan1", kind=b"CIDFontType0")
        fonts.append((f, [hexstr(b"".join(codes[i:i + 64])) for i in range(0, len(codes), 64)]))
    return fonts


def truetype_font():
    """A TrueType program with only what the parser reads: a `cmap` with a
    (3,1) format 4, a (3,10) format 12, a (1,0) format 0 and a (0,3)
    format 6 subtable."""
    # Format 4: 0x41-0x5A -> gid 1.. by delta; 0x3B1-0x3B5 through glyph ids.
    ends, starts, deltas, ros = [0x5A, 0x3B5, 0xFFFF], [0x41, 0x3B1, 0xFFFF], [(1 - 0x41) & 0xFFFF, 0, 1], [0, 4, 0]
    glyphs = [40, 41, 0, 42, 43]
    segs = len(ends)
    f4 = struct.pack(">HHHHHHH", 4, 0, 0, segs * 2, 4, 1, segs * 2 - 4)
    f4 += struct.pack(">%dH" % segs, *ends) + b"\0\0" + struct.pack(">%dH" % segs, *starts)
    f4 += struct.pack(">%dH" % segs, *deltas) + struct.pack(">%dH" % segs, *ros)
    f4 += struct.pack(">%dH" % len(glyphs), *glyphs)
    f4 = f4[:2] + struct.pack(">H", len(f4)) + f4[4:]
    groups = [(0x1F600, 0x1F60F, 60), (0x4E00, 0x4E10, 80)]
    f12 = struct.pack(">HHIII", 12, 0, 16 + 12 * len(groups), 0, len(groups))
    f12 += b"".join(struct.pack(">III", *g) for g in groups)
    f0 = struct.pack(">HHH", 0, 262, 0) + bytes((c % 100) for c in range(256))
    f6 = struct.pack(">HHHHH", 6, 10 + 2 * 8, 0, 0x5D0, 8) + struct.pack(">8H", *range(100, 108))
    subs = [((3, 1), f4), ((3, 10), f12), ((1, 0), f0), ((0, 3), f6)]
    cmap = struct.pack(">HH", 0, len(subs))
    offset = 4 + 8 * len(subs)
    body = b""
    for (platform, encoding), sub in subs:
        cmap += struct.pack(">HHI", platform, encoding, offset + len(body))
        body += sub
    cmap += body
    head = struct.pack(">IHHHH", 0x00010000, 2, 32, 1, 0)
    directory = b"cmap" + struct.pack(">III", 0, 12 + 16 * 2, len(cmap))
    directory += b"head" + struct.pack(">III", 0, 12 + 16 * 2 + len(cmap), 54)
    return head + directory + cmap + bytes(54)


def composite_fonts(doc, rng):
    """Type 0 fonts: every way a code becomes a CID and a CID text."""
    fonts = []

    tu = doc.stream(cmap_stream(
        b"2 beginbfchar <0001> <05D0> <0002> <0627> endbfchar\n"
        b"1 beginbfrange <0010> <0020> <0041> endbfrange",
        codespace=b"<0000> <FFFF>",
    ))
    fonts.append((type0_font(doc, b"/Identity-H", b"/DW 500 /W [1 [600 700] 16 32 450]", b"/ToUnicode %d 0 R" % tu),
                  [hexstr(bytes([0, 1, 0, 2, 0, 0x10, 0, 0x15, 0, 0x20, 0xFF, 0xFF]))]))
    text = "Grüße, 世界 😀 עברית العربية"
    for name, codec in ((b"UniGB-UCS2-H", "utf-16-be"), (b"UniJIS-UTF16-H", "utf-16-be"), (b"UniKS-UTF16-V", "utf-16-be")):
        fonts.append((type0_font(doc, b"/" + name), [hexstr(text.encode(codec)), hexstr(b"\xd8\x3d")]))
    for name, codec, sample in (
        (b"GBK-EUC-H", "gbk", "中文文本 abc"),
        (b"GB-EUC-H", "gbk", "汉字"),
        (b"B5pc-H", "big5", "繁體中文"),
        (b"ETen-B5-H", "big5", "臺灣"),
        (b"90ms-RKSJ-H", "shift_jis", "日本語のテキスト ｱｲｳ"),
        (b"EUC-H", "euc_jp", "漢字かな"),
        (b"KSC-EUC-H", "euc_kr", "한국어 텍스트"),
        (b"HKscs-B5-H", "big5", "香港"),
    ):
        data = sample.encode(codec)
        fonts.append((type0_font(doc, b"/" + name), [hexstr(data), hexstr(data[:-1] + b"\xff"), hexstr(b"\x81")]))
    for ordering in (b"Japan1", b"GB1", b"CNS1", b"Korea1", b"KR"):
        desc = doc.add(
            b"<< /Type /Font /Subtype /CIDFontType0 /BaseFont /Seed /CIDSystemInfo"
            b" << /Registry (Adobe) /Ordering (%s) /Supplement 6 >> /W [1 [500] 100 200 1000] >>" % ordering
        )
        f = doc.add(b"<< /Type /Font /Subtype /Type0 /BaseFont /Seed /Encoding /Identity-H /DescendantFonts [%d 0 R] >>" % desc)
        cids = [1, 34, 100, 633, 1200, 7716, 12000, 20000, 65535]
        fonts.append((f, [hexstr(b"".join(struct.pack(">H", c) for c in cids))]))
    # A long /W whose later entries cut into, split and swallow the earlier
    # ones by the dozen: the width map's tree grows several levels deep and
    # rebalances as ranges leave it (its own generator, so that the other
    # seeds stay as they were).
    wr = random.Random(29)
    entries = [b"0 [" + b" ".join(b"%d" % wr.randrange(200, 1000) for _ in range(600)) + b"]"]
    for _ in range(40):
        first = wr.randrange(0, 700)
        if wr.random() < 0.5:
            entries.append(b"%d %d %d" % (first, first + wr.randrange(0, 150), wr.randrange(200, 1000)))
        else:
            entries.append(b"%d [" % first + b" ".join(b"%d" % wr.randrange(200, 1000) for _ in range(wr.randrange(1, 30))) + b"]")
    f = type0_font(doc, b"/Identity-H", b"/DW 1000 /W [%s]" % b" ".join(entries))
    fonts.append((f, [hexstr(b"".join(struct.pack(">H", wr.randrange(0, 800)) for _ in range(40)))]))
    # An embedded TrueType font's cmap, directly and through a CIDToGIDMap.
    program = truetype_font()
    ttf = doc.stream(program, b"/Length1 %d" % len(program))
    fd = doc.add(b"<< /Type /FontDescriptor /FontName /Seed /Flags 4 /FontFile2 %d 0 R >>" % ttf)
    cid_to_gid = doc.stream(b"".join(struct.pack(">H", (c * 7) % 120) for c in range(300)))
    for extra in (b"", b"/CIDToGIDMap %d 0 R" % cid_to_gid, b"/CIDToGIDMap /Identity"):
        f = type0_font(doc, b"/Identity-H", b"/FontDescriptor %d 0 R %s" % (fd, extra))
        fonts.append((f, [hexstr(b"".join(struct.pack(">H", g) for g in (1, 2, 26, 40, 41, 42, 60, 61, 80, 100, 107, 250)))]))
    # An embedded CMap as the encoding: mixed code lengths, CID ranges and
    # single CIDs, on top of another CMap.
    enc = doc.stream(encoding_cmap(
        b"Seed-H",
        [b"<00> <80>", b"<8140> <FEFE>"],
        b"2 begincidrange <20> <7E> 1 <8140> <817E> 633 endcidrange\n1 begincidchar <8180> 7716 endcidchar",
        usecmap=b"/Identity-H usecmap",
    ))
    f = type0_font(doc, b"%d 0 R" % enc, ordering=b"Japan1")
    fonts.append((f, [hexstr(b"AB\x81\x40\x81\x41\x81\x80\xff\xfe"), b"(plain ascii)"]))
    return fonts


# A value of each object type (and numbers at the ends of what a reader
# takes), for keys that expect one of them; then a reference to a page or
# stream, and one to nothing.
MISTYPED = [b"null", b"true", b"-7", b"0", b"4294967296", b"2.5", b"/Odd", b"(odd)", b"[1 /a (b)]",
            b"<< /A 1 >>", b"4 0 R", b"999 0 R"]


def mistyped_documents():
    """Every key the page reader looks up, given a value of each object type
    in turn (and references to a number, to a stream and to nothing): a
    page to each key, a font (or page, or form) to each value."""
    slot = b"@"

    def values(doc):
        return MISTYPED[:-2] + [b"%d 0 R" % doc.stream(b"0 0 1 1 re f"), b"%d 0 R" % doc.add(b"42"), b"999 0 R"]

    def text(n):
        return b"\n".join(b"BT /F%d 12 Tf 72 %d Td (AB ab) Tj [<0041> 5 <00410042>] TJ ET" % (k + 1, 700 - 20 * k)
                          for k in range(n))

    docs = []
    # Simple, Type 3 and composite fonts, a document to each kind: each key
    # of theirs (and of the dictionaries they hold) in turn.
    simple = (b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /FirstChar 32 /LastChar 40 /Widths [500 @ 500]"
              b" /Encoding << /Type /Encoding /BaseEncoding /WinAnsiEncoding /Differences [65 /B @ /C] >>"
              b" /ToUnicode {tu} 0 R /FontDescriptor << /Type /FontDescriptor /Flags 32 /MissingWidth 250"
              b" /FontFile2 {ttf} 0 R >> >>")
    type3 = (b"<< /Type /Font /Subtype /Type3 /FontBBox [0 0 1000 1000] /FontMatrix [0.001 0 0 0.001 0 0]"
             b" /CharProcs << /a {proc} 0 R >> /Encoding << /Differences [65 /a] >> /FirstChar 65 /LastChar 66"
             b" /Widths [500 @] /Resources << >> >>")
    type0 = (b"<< /Type /Font /Subtype /Type0 /BaseFont /Seed /Encoding /Identity-H /ToUnicode {cid_tu} 0 R"
             b" /DescendantFonts [<< /Type /Font /Subtype /CIDFontType2 /BaseFont /Seed"
             b" /CIDSystemInfo << /Registry (Adobe) /Ordering (Japan1) /Supplement 6 >> /DW 1000"
             b" /W [65 [500 @] 70 80 @] /CIDToGIDMap /Identity"
             b" /FontDescriptor << /Type /FontDescriptor /Flags 4 /FontFile2 {ttf} 0 R >> >>] >>")
    simple_keys = [b"Type", b"Subtype", b"BaseFont", b"FirstChar", b"LastChar", b"Widths", b"Encoding",
                   b"BaseEncoding", b"Differences", b"FontDescriptor", b"Flags", b"MissingWidth", b"FontFile2"]
    for base, keys in (
        (simple, simple_keys + [b"ToUnicode"]),
        # Without a ToUnicode map the encoding is read on another path.
        (simple.replace(b" /ToUnicode {tu} 0 R", b""), simple_keys),
        (type3, [b"FontMatrix", b"CharProcs", b"Encoding", b"FirstChar", b"Widths", b"Resources"]),
        (type0, [b"Encoding", b"ToUnicode", b"DescendantFonts", b"CIDSystemInfo", b"Ordering", b"DW", b"W",
                 b"CIDToGIDMap", b"FontDescriptor", b"FontFile2", b"Subtype"]),
    ):
        doc = Objects()
        base = base.decode().format(
            tu=doc.stream(cmap_stream(b"1 beginbfrange <20> <7E> <0020> endbfrange")),
            cid_tu=doc.stream(cmap_stream(b"1 beginbfrange <0020> <007E> <0020> endbfrange", codespace=b"<0000> <FFFF>")),
            ttf=doc.stream(truetype_font()),
            proc=doc.stream(b"500 0 d0 0 0 500 500 re f"),
        ).encode()
        # The values inside arrays (`@` in the template), then each key's.
        templates = [base]
        base = base.replace(slot, b"600")
        for key in keys:
            templates.append(_with_value(base, key, slot))
        for template in templates:
            fonts = [doc.add(template.replace(slot, v)) for v in values(doc)]
            doc.page(text(len(fonts)), fonts)
        docs.append(doc.pdf())
    # The page's own keys, and a form's.
    doc = Objects()
    font = doc.add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    form_content = b"BT /F1 9 Tf (x) Tj ET"
    form = (b"<< /Type /XObject /Subtype /Form /BBox [0 0 500 500] /Matrix [1 0 0 1 5 5]"
            b" /Resources << /Font << /F1 %d 0 R >> >> /Length %d >>\nstream\n%s\nendstream"
            % (font, len(form_content), form_content))
    page = (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R"
            b" /Resources << /Font << /F1 %d 0 R >> /XObject << /X1 %d 0 R >> >> >>")
    # Each key's page shows text only through what the key leads to, so
    # that a page left without text says which fonts it had.
    both, text_only, form_only = (doc.stream(text(1) + b" /X1 Do"), doc.stream(text(1)), doc.stream(b"/X1 Do"))
    for key, contents in ((b"Contents", both), (b"Resources", both), (b"Font", text_only), (b"F1", text_only),
                          (b"XObject", form_only), (b"X1", form_only), (b"MediaBox", both)):
        for v in values(doc):
            doc.pages.append(doc.add(_with_value(page % (contents, font, doc.add(form)), key, v)))
    for key in (b"Subtype", b"BBox", b"Matrix", b"Resources"):
        for v in values(doc):
            doc.pages.append(doc.add(page % (form_only, font, doc.add(_with_value(form, key, v)))))
    docs.append(doc.pdf())
    return docs


def _value_end(data, start):
    """Where the object written at `start` ends: a reference, a dictionary,
    an array, a string or a single token."""
    ref = re.match(rb"\d+ \d+ R", data[start:])
    if ref:
        return start + ref.end()
    opening = data[start:start + 2] if data[start:start + 2] == b"<<" else data[start:start + 1]
    closing = {b"<<": b">>", b"[": b"]", b"(": b")"}.get(opening)
    if not closing:
        return re.compile(rb"[ /\[\]<>()]").search(data, start + 1).start()
    depth, i = 0, start
    while True:
        if data.startswith(opening, i):
            depth, i = depth + 1, i + len(opening)
        elif data.startswith(closing, i):
            depth, i = depth - 1, i + len(closing)
            if not depth:
                return i
        else:
            i += 1


def bidi_document():
    """A page of lines mixing a character of every bidirectional class
    (explicit embeddings, overrides and isolates among them) and bracket
    pairs, in random runs: the sequences the bidi algorithm's weak and
    neutral rules look at."""
    chars = ("a", "\u05d0", "\u0627", "1", "+", "-", "$", "%", "\u0661", ",", ":", "/", "\u0301", "\u200b",
             "\u2029", "\t", " ", "!", "\u202a", "\u202d", "\u202b", "\u202e", "\u202c", "\u2066", "\u2067",
             "\u2068", "\u2069", "(", ")", "[", "]", "{", "}", "\u00ab", "\u00bb", "\u06f1", "\u200f", "\u200e")
    doc = Objects()
    tu = doc.stream(cmap_stream(
        b"%d beginbfchar " % len(chars)
        + b" ".join(b"<%02X> %s" % (0x41 + i, hexstr(c.encode("utf-16-be"))) for i, c in enumerate(chars))
        + b" endbfchar"
    ))
    f = doc.add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /ToUnicode %d 0 R >>" % tu)
    runs = random.Random(31)
    lines = [b"BT /F1 10 Tf 40 760 Td 12 TL"]
    for _ in range(60):
        spans = []
        for _ in range(runs.randrange(1, 6)):
            codes = bytes(0x41 + runs.randrange(len(chars)) for _ in range(runs.randrange(1, 14)))
            spans.append(hexstr(codes) + b" Tj")
        lines.append(b" ".join(spans) + b" T*")
    lines.append(b"ET")
    doc.page(b"\n".join(lines), [f])
    return doc.pdf()


def inline_image_document():
    """A page for each way an inline image's `ID` and `EI` stand alone or
    do not: each white-space byte before and after both, each delimiter
    and the end of the content after `EI`, and near misses (`ID` and `EI`
    inside a word, `EI` in the image data), each followed by text that
    must still be read."""
    doc = Objects()
    f = doc.add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    after = b"BT /F1 12 Tf 72 700 Td (after the image) Tj ET"
    head = b"q BI /W 2 /H 1 /CS /G /BPC 8"

    def image(before_id, after_id, data, before_ei, after_ei):
        return head + before_id + b"ID" + after_id + data + before_ei + b"EI" + after_ei

    for w in b" \t\r\n\x0c\x00":
        w = bytes([w])
        doc.page(image(w, w, b"\x41\x42", w, w) + b"Q " + after, [f])
    for d in b"()<>[]{}/%":
        doc.page(image(b" ", b" ", b"\x41\x42", b" ", bytes([d])) + b" Q " + after, [f])
    doc.page(image(b" ", b" ", b"\x41\x42", b" ", b""), [f])
    near = [
        image(b" ", b" ", b"EI EIx \nEI", b" ", b" "),
        head + b" /IDx 1 /XID 2 ID \x41\x42 XEI EIZ EI Q ",
        head + b"ID \x41\x42 EI Q ",
        head + b" IDX \x41\x42 EI ID \x41 EI Q ",
        head + b" ID",
        head + b" ID \x41\x42",
        b"BI ID EI",
    ]
    for content in near:
        doc.page(content + after, [f])
    return doc.pdf()


def batch_documents(rng):
    """Documents of a few pages, a font kind to each page."""
    docs = mistyped_documents() + linearized_documents() + updated_documents()
    for make in (simple_fonts, composite_fonts, named_fonts, legacy_code_fonts, near_miss_fonts):
        doc = Objects()
        fonts = make(doc, rng)
        for start in range(0, len(fonts), 3):
            group = fonts[start : start + 3]
            parts = []
            for k, (_, strings) in enumerate(group):
                parts.append(show(strings, rng).replace(b"/F1 ", b"/F%d " % (k + 1)))
            doc.page(b"\n".join(parts), [f for f, _ in group])
        docs.append(doc.pdf())
    # Right-to-left and mixed text, through a form XObject inside a form,
    # beside an inline image and marked content.
    doc = Objects()
    tu = doc.stream(cmap_stream(
        b"1 beginbfrange <20> <7E> [" + b" ".join(
            hexstr(c.encode("utf-16-be")) for c in
            "‏ (ابت) [שלום] 123 «عربي» العربية לְשָׁלוֹם 4.5% ﻻ ﷲ x‎ y ‪z‬ ‫ط‬ ⁦q⁩ ⁧r⁩ ⁨s⁩ 0٠١٢ ا ب ت ث ج ح خ د ذ ر ز س ش ص ض ط ظ ع غ ف ق ك ل م ن ه و ي ى ة ء آ أ ؤ إ ئ פ ף צ ץ"[:95]
        ) + b"] endbfrange"
    ))
    f = doc.add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /ToUnicode %d 0 R >>" % tu)
    inner = doc.stream(b"BT /F1 10 Tf 10 10 Td (ABC 123 def) Tj ET",
                       b"/Type /XObject /Subtype /Form /BBox [0 0 500 500] /Resources << /Font << /F1 %d 0 R >> >>" % f)
    outer = doc.stream(b"q 1 0 0 1 50 50 cm /X1 Do Q BT /F1 12 Tf 5 5 Td (HIJ) Tj ET /X1 Do",
                       b"/Type /XObject /Subtype /Form /BBox [0 0 500 500] /Matrix [1 0 0 1 5 5]"
                       b" /Resources << /Font << /F1 %d 0 R >> /XObject << /X1 %d 0 R >> >>" % (f, inner))
    image = b"BI /W 4 /H 2 /CS /G /BPC 8 /F /AHx ID 00112233445566778899> EI"
    page = (
        b"/P << /MCID 0 >> BDC " + show([b"(ABCDEFG 123 hij)", b"(KLM (n) op)", b"(QRSTU 45)"] * 3, rng)
        + b" EMC " + image + b" /X2 Do"
    )
    doc.page(page, [f], b"/XObject << /X2 %d 0 R >>" % outer)
    docs.append(doc.pdf())
    docs.append(bidi_document())
    docs.append(inline_image_document())
    return docs


def updated_documents():
    """A two-page document after incremental updates, each update a new
    copy of a page and its own cross-reference section whose `/Prev` names
    the one before: chains of table sections, of stream sections and of
    both, hybrid sections (`/XRefStm`), and `/Prev` chains that lead back
    into themselves, to the section `startxref` names, before the file or
    past its end, or to a value that is no offset."""
    font = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"

    def page(i, text):
        content = b"BT /F1 12 Tf 72 700 Td (%s %d) Tj ET" % (text, i)
        return (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R"
                b" /Resources << /Font << /F1 3 0 R >> >> >>" % (6 + i),
                b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content))

    objects = {1: b"<< /Type /Catalog /Pages 2 0 R >>", 3: font,
               2: b"<< /Type /Pages /Kids [4 0 R 5 0 R] /Count 2 >>"}
    for i in range(2):
        objects[4 + i], objects[6 + i] = page(i, b"first")
    size = 8

    def table(changed):
        rows = b"".join(b"%d 1\n%010d 00000 n \n" % (n, off) for n, off in sorted(changed.items()))
        return b"xref\n0 1\n0000000000 65535 f \n" + rows

    def stream_section(num, changed, dictionary):
        rows = bytearray([0, 0, 0, 0, 0xFF, 0xFF])
        index = [0, 1]
        for n, off in sorted(changed.items()):
            rows += bytes([1]) + off.to_bytes(3, "big") + bytes(2)
            index += [n, 1]
        packed = zlib.compress(bytes(rows))
        return (b"%d 0 obj\n<< /Type /XRef /W [1 3 2] /Index [%s] /Filter /FlateDecode /Length %d %s >>\nstream\n"
                % (num, b" ".join(b"%d" % k for k in index), len(packed), dictionary)
                + packed + b"\nendstream\nendobj\n")

    def build(kinds, prev_of):
        """`kinds[k]` is "table", "stream" or "hybrid" for section k (0 the
        original); `prev_of(k, starts, here)` the `/Prev` value of section
        k > 0, given the offsets of the sections before it and its own."""
        out, starts, next_num = HEADER, [], size
        for k, kind in enumerate(kinds):
            update = objects if k == 0 else dict(zip((4 + k % 2, 6 + k % 2), page(k % 2, b"update %d" % k)))
            out, changed = write_objects(update, out)
            if kind != "table":
                num, next_num = next_num, next_num + 1
            if kind == "hybrid":
                # The new objects only in the stream; the table names the stream.
                stream_at = len(out)
                out += stream_section(num, changed | {num: stream_at}, b"/Size %d" % next_num)
            here = len(out)
            starts.append(here)
            prev = b"" if k == 0 else b" /Prev %s" % prev_of(k, starts[:-1], here)
            if kind == "table":
                out += table(changed) + b"trailer\n<< /Size %d /Root 1 0 R%s >>\n" % (next_num, prev)
            elif kind == "stream":
                out += stream_section(num, changed | {num: here}, b"/Size %d /Root 1 0 R%s" % (next_num, prev))
            else:
                out += (b"xref\n0 1\n0000000000 65535 f \ntrailer\n<< /Size %d /Root 1 0 R /XRefStm %d%s >>\n"
                        % (next_num, stream_at, prev))
            out += b"startxref\n%d\n%%%%EOF\n" % here
        return bytes(out)

    back = lambda k, starts, here: b"%d" % starts[-1]
    chains = [["table"] * 4, ["stream"] * 4, ["table", "stream", "table", "stream"],
              ["stream", "table", "hybrid", "table"], ["table", "hybrid", "hybrid"]]
    docs = [build(kinds, back) for kinds in chains]
    # /Prev chains that lead back into themselves: the oldest update to
    # itself, and to the newest, which `startxref` names.
    docs.append(build(["table"] * 3, lambda k, starts, here: b"%d" % (here if k == 1 else starts[-1])))
    # (The newest section's offset depends on the digits of the /Prev before
    # it: build until the offset named is the offset it lands at.)
    newest, doc = 0, b""
    while not doc or doc.rindex(b"\nxref\n") + 1 != newest:
        newest = doc.rindex(b"\nxref\n") + 1 if doc else 0
        doc = build(["table"] * 3, lambda k, starts, here: b"%d" % (newest if k == 1 else starts[-1]))
    docs.append(doc)
    for value in (b"-1", b"0", b"99999999", b"1099511627776", b"17.5", b"(12)", b"/Prev", b"[0]", b"null",
                  b"3 0 R"):
        docs.append(build(["table", "table", "stream"],
                          lambda k, starts, here, v=value: v if k == 2 else b"%d" % starts[-1]))
    # An /XRefStm that points at the file's start, into the header, and
    # past the end.
    for value in (b"0", b"9", b"99999999"):
        doc = build(["table", "table"], back)
        docs.append(doc.replace(b"/Root 1 0 R /Prev", b"/Root 1 0 R /XRefStm %s /Prev" % value))
    return docs


def open_documents(rng):
    """Every filter chain, under both cross-reference kinds, plain and (for
    every third chain) under each security handler."""
    xref_chains = [
        [],
        [("FlateDecode", {"level": 6})],
        [("FlateDecode", {"level": 6, "Predictor": 12, "Columns": 6})],
        [("LZWDecode", {"Predictor": 15, "Columns": 6, "EarlyChange": 1})],
        [("ASCIIHexDecode", {})],
    ]
    docs = []
    for i, chain in enumerate(chains()):
        for xref_stream in (False, True):
            for crypt in (None, 2, 3, 4, 5, 6):
                if crypt and i % 3:
                    continue
                xref_chain = xref_chains[i % len(xref_chains)] if xref_stream else []
                docs.append(document(rng, chain, xref_stream, xref_chain, crypt))
    return docs


def mistyped_open_documents():
    """Every key the reader and the security handlers look up (and some
    they look up only when present), given a value of each object type in
    turn: a document to each."""
    cases = [
        # (xref stream, crypt revision, {where: keys})
        (False, None, {"trailer": [b"Root", b"Size", b"ID", b"Prev", b"Info", b"Encrypt", b"XRefStm"],
                       1: [b"Type", b"Pages"], 2: [b"Type", b"Kids", b"Count"],
                       3: [b"Type", b"Parent", b"Contents", b"Resources", b"MediaBox"],
                       4: [b"Length", b"Filter", b"DecodeParms", b"Predictor", b"Columns", b"Colors",
                           b"BitsPerComponent"],
                       5: [b"ToUnicode", b"FontDescriptor"], 8: [b"FontFile"]}),
        (True, None, {"trailer": [b"Type", b"Size", b"W", b"Index", b"Root", b"Prev", b"Filter", b"DecodeParms",
                                  b"Predictor", b"Columns", b"EarlyChange"],
                      10: [b"Type", b"N", b"First", b"Length", b"Extends"]}),
        (False, 2, {9: [b"Filter", b"V", b"R", b"O", b"U", b"P"], "trailer": [b"ID", b"Encrypt"]}),
        (False, 4, {9: [b"V", b"R", b"Length", b"CF", b"CFM", b"StmF", b"StrF", b"EncryptMetadata"]}),
        (True, 6, {9: [b"V", b"R", b"Length", b"CF", b"CFM", b"O", b"U", b"OE", b"UE", b"Perms", b"P"]}),
    ]
    return [_open_variant(xref_stream, revision, where, key, value)
            for xref_stream, revision, keys in cases
            for where, names in keys.items()
            for key in names
            for value in MISTYPED]


def predictor_documents():
    """The predicted stream of `_open_variant`'s document, and its
    predicted cross-reference stream, under decode parameters that do not
    fit them: rows whose size overflows, predictors PDF does not define,
    depths lopdf's predictors do not take, and zero, negative and
    mismatched row shapes."""
    parms = [b"<< /Predictor 12 /Columns 1099511627776 /Colors 1099511627776 >>",
             b"<< /Predictor 2 /Columns 4294967296 /Colors 4294967296 /BitsPerComponent 16 >>",
             b"<< /Predictor 12 /Columns 4294967296 /Colors 3 >>",
             b"<< /Predictor 1 /Columns 17 >>", b"<< /Predictor 3 /Columns 17 >>",
             b"<< /Predictor 16 /Columns 17 >>", b"<< /Predictor 2 /Columns 17 /BitsPerComponent 3 >>",
             b"<< /Predictor 2 /Columns 17 /Colors 3 /BitsPerComponent 4 >>",
             b"<< /Predictor 12 /Columns 17 /Colors 3 /BitsPerComponent 1 >>",
             b"<< /Predictor 10 /Columns -5 >>", b"<< /Predictor 15 /Columns 0 /Colors 0 /BitsPerComponent 0 >>",
             b"<< /Predictor 12.0 /Columns 17.5 /Colors 3 >>", b"<< /Columns 17 /Colors 3 >>", b"<< >>"]
    return [_open_variant(xref_stream, None, where, b"DecodeParms", value)
            for xref_stream, where in ((False, 4), (True, "trailer"))
            for value in parms]


# The filter chains of `_open_variant`'s documents: their streams', and
# (when it is a stream) their cross-reference's.
OPEN_VARIANT_CHAIN = [("FlateDecode", {"level": 6, "Predictor": 12, "Columns": 17, "Colors": 3, "BitsPerComponent": 8})]
OPEN_VARIANT_XREF_CHAIN = [("LZWDecode", {"Predictor": 12, "Columns": 6, "EarlyChange": 1})]


def _open_variant(xref_stream, revision, where, key, value):
    """The one-page document of `document`, its streams under Flate with a
    PNG predictor, with `key` of object `where` (or of the trailer) set to
    `value`."""
    def edit(at, body):
        return _with_value(body, key, value) if at == where else body

    seed = random.Random(repr((xref_stream, revision, where, key, value)))
    xref_chain = OPEN_VARIANT_XREF_CHAIN if xref_stream else []
    return document(seed, OPEN_VARIANT_CHAIN, xref_stream, xref_chain, revision, edit)


def linearized_documents():
    """One-page documents that open with a linearization parameter
    dictionary: as it should be, then with each entry mistyped or missing,
    and with hint arrays of every length."""
    text = b"BT /F1 12 Tf 72 700 Td (Linearized) Tj ET"
    base = b"<< /Linearized 1 /L 2000 /H [700 120] /O 4 /E 1500 /N 1 /T 1800 /P 0 >>"
    variants = [base]
    for key in (b"Linearized", b"L", b"H", b"O", b"E", b"N", b"T", b"P"):
        variants += [_with_value(base, key, v) for v in MISTYPED]
        start = base.index(b"/" + key + b" ")
        variants.append(base[:start] + base[_value_end(base, start + len(key) + 2) + 1:])
    variants += [_with_value(base, b"H", h) for h in (b"[]", b"[700]", b"[700 120 900]", b"[700 120 900 40]",
                                                      b"[-1 120]", b"[700 (x)]")]
    docs = []
    for lin in variants:
        objects = {
            1: lin,
            2: b"<< /Type /Catalog /Pages 3 0 R >>",
            3: b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>",
            4: b"<< /Type /Page /Parent 3 0 R /MediaBox [0 0 612 792] /Contents 5 0 R"
               b" /Resources << /Font << /F1 6 0 R >> >> >>",
            5: b"<< /Length %d >>\nstream\n%s\nendstream" % (len(text), text),
            6: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        }
        docs.append(classic(objects, edit=lambda where, body: _with_value(body, b"Root", b"2 0 R")))
    return docs


def damaged_documents():
    """Documents of many pages, their objects numbered out of page order,
    that the reader must rebuild by scanning: cut off before their
    cross-reference (a table, or a stream with the pages in object
    streams), without their page tree, and with later copies of some pages
    appended by an update that was itself cut off."""
    shuffle = random.Random(41)
    count = 48
    nums = list(range(10, 10 + 2 * count))
    shuffle.shuffle(nums)
    page_nums, content_nums = nums[:count], nums[count:]
    font = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"

    def page(i, text=b"page"):
        content = b"BT /F1 12 Tf 72 700 Td (%s %03d) Tj ET" % (text, i)
        return (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R"
                b" /Resources << /Font << /F1 3 0 R >> >> >>" % content_nums[i],
                b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content))

    objects = {1: b"<< /Type /Catalog /Pages 2 0 R >>", 3: font,
               2: b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % n for n in page_nums), count)}
    for i in range(count):
        objects[page_nums[i]], objects[content_nums[i]] = page(i)
    docs = []
    whole = classic(objects)
    cut = whole.index(b"\nxref\n")
    docs.append(whole[:cut])
    docs.append(whole[:cut - 200])  # mid-object
    without_tree = dict(objects)
    del without_tree[2]
    without_tree = classic(without_tree)
    docs.append(without_tree[:without_tree.index(b"\nxref\n")])
    # A later update: new copies of every third page, cut off before its
    # own table.
    update = bytearray(whole)
    for i in range(0, count, 3):
        body, content = page(i, b"revised")
        update += b"%d 0 obj\n%s\nendobj\n%d 0 obj\n%s\nendobj\n" % (page_nums[i], body, content_nums[i], content)
    docs.append(bytes(update))
    docs.append(bytes(update[:cut]) + bytes(update[len(whole):]))
    # The pages in object streams, eight to a stream, the file cut before
    # its cross-reference stream.
    out, _ = write_objects({n: b for n, b in objects.items() if n not in page_nums})
    out = bytearray(out)
    stream_num = 200
    for k in range(0, count, 8):
        inside = page_nums[k:k + 8]
        header, body = object_stream_content(inside, objects)
        packed = zlib.compress(header + body)
        out += (b"%d 0 obj\n<< /Type /ObjStm /N %d /First %d /Length %d /Filter /FlateDecode >>\nstream\n"
                % (stream_num, len(inside), len(header), len(packed)) + packed + b"\nendstream\nendobj\n")
        stream_num += 1
    docs.append(bytes(out))
    return docs


def mistyped_damaged_documents():
    """Six pages under a two-level page tree, whole and cut off before
    the cross-reference (so read by scanning), with each key of the
    catalog and of the tree's nodes given a value of each object type in
    turn: a scan checks them on its own path, and the inner nodes still to
    come are counted on another (`lopdf`'s page iterator's size hint)."""
    count = 6
    font = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"
    objects = {1: b"<< /Type /Catalog /Pages 2 0 R >>", 3: font,
               2: b"<< /Type /Pages /Kids [4 0 R 5 0 R] /Count %d >>" % count,
               4: b"<< /Type /Pages /Parent 2 0 R /Kids [10 0 R 11 0 R 12 0 R] /Count 3 >>",
               5: b"<< /Type /Pages /Parent 2 0 R /Kids [13 0 R 14 0 R 15 0 R] /Count 3 >>"}
    for i in range(count):
        content = b"BT /F1 12 Tf 72 700 Td (page %03d) Tj ET" % i
        objects[10 + i] = (b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] /Contents %d 0 R"
                           b" /Resources << /Font << /F1 3 0 R >> >> >>" % (4 + i // 3, 20 + i))
        objects[20 + i] = b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content)
    docs = []
    for where, keys in ((1, [b"Type", b"Pages"]), (2, [b"Type", b"Kids", b"Count"]),
                        (4, [b"Type", b"Kids", b"Parent"]), (5, [b"Count"])):
        for key in keys:
            for value in MISTYPED + [b"20 0 R"]:  # and a stream
                edited = dict(objects)
                edited[where] = _with_value(objects[where], key, value)
                whole = classic(edited)
                docs += [whole, whole[:whole.index(b"\nxref\n")]]
    return docs


def _with_value(body, key, value):
    """The dictionary `body` with `key`'s value (its first, at any depth)
    replaced by `value`, or the key added if it has none."""
    at = body.find(b"/" + key + b" ")
    if at < 0:
        return body[:-2] + b"/" + key + b" " + value + b" >>"
    start = at + len(key) + 2
    return body[:start] + value + body[_value_end(body, start):]


def open_seeds(rng):
    return (open_documents(rng) + mistyped_open_documents() + predictor_documents() + linearized_documents()
            + damaged_documents() + mistyped_damaged_documents())


def parse_batch_seeds(rng):
    # A seed in both (`linearized_documents`) is written once, by its hash.
    return batch_documents(rng) + open_seeds(rng)


TARGETS = {"pdf_open": open_seeds, "parse_batch": parse_batch_seeds}


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in TARGETS:
        sys.exit("usage: seeds.py pdf_open|parse_batch OUT_DIR")
    out = Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    docs = TARGETS[sys.argv[1]](random.Random(9))
    for pdf in docs:
        (out / hashlib.sha1(pdf).hexdigest()).write_bytes(pdf)
    print(len(docs))


if __name__ == "__main__":
    main()
