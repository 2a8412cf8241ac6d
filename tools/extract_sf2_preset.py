#!/usr/bin/env python3
"""Extract one preset from an SF2 SoundFont into a new, self-contained SF2.

Keeps the preset, the instruments it uses and the samples those reference (plus
stereo partners named by sampleLink), reindexes every pdta sub-chunk
(phdr/pbag/pmod/pgen/inst/ibag/imod/igen/shdr, each with its terminal record),
and rewrites sdta/smpl with only the used samples, each followed by the 46 zero
sample points the SF2 spec requires. Sample data is copied bit for bit.

Usage (how data/soundfont/piano.sf2 was made):
    apt-get install fluid-soundfont-gm
    python3 tools/extract_sf2_preset.py /usr/share/sounds/sf2/FluidR3_GM.sf2 \
        data/soundfont/piano.sf2 --bank 0 --preset 0

Standard library only.
"""

import argparse
import struct
import sys

GEN_INSTRUMENT = 41
GEN_SAMPLE_ID = 53
GUARD_POINTS = 46

PHDR = struct.Struct("<20sHHHIII")  # 38 bytes
BAG = struct.Struct("<HH")  # pbag / ibag, 4 bytes
MOD = struct.Struct("<HHhHH")  # pmod / imod, 10 bytes
GEN = struct.Struct("<HH")  # pgen / igen, 4 bytes (amount kept as raw u16)
INST = struct.Struct("<20sH")  # 22 bytes
SHDR = struct.Struct("<20sIIIIIBbHH")  # 46 bytes


def chunks(data, start, end):
    """Yield (id, body_start, body_len) for the RIFF chunks in data[start:end]."""
    pos = start
    while pos + 8 <= end:
        cid = data[pos : pos + 4]
        size = struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if body + size > end:
            sys.exit(f"chunk {cid!r} at {pos} overruns its parent")
        yield cid, body, size
        pos = body + size + (size & 1)


def read_sf2(path):
    data = open(path, "rb").read()
    if data[0:4] != b"RIFF" or data[8:12] != b"sfbk":
        sys.exit(f"{path}: not an SF2 (RIFF sfbk) file")
    lists = {}
    for cid, body, size in chunks(data, 12, len(data)):
        if cid == b"LIST":
            lists[data[body : body + 4]] = {
                sid: data[sb : sb + ss]
                for sid, sb, ss in chunks(data, body + 4, body + size)
            }
    for need in (b"INFO", b"sdta", b"pdta"):
        if need not in lists:
            sys.exit(f"{path}: missing LIST {need!r}")
    return lists


def records(raw, st):
    if len(raw) % st.size:
        sys.exit(f"sub-chunk length {len(raw)} is not a multiple of {st.size}")
    return [st.unpack_from(raw, i) for i in range(0, len(raw), st.size)]


def extract(lists, bank, preset):
    pdta = lists[b"pdta"]
    phdr = records(pdta[b"phdr"], PHDR)
    pbag = records(pdta[b"pbag"], BAG)
    pmod = records(pdta[b"pmod"], MOD)
    pgen = records(pdta[b"pgen"], GEN)
    inst = records(pdta[b"inst"], INST)
    ibag = records(pdta[b"ibag"], BAG)
    imod = records(pdta[b"imod"], MOD)
    igen = records(pdta[b"igen"], GEN)
    shdr = records(pdta[b"shdr"], SHDR)

    matches = [i for i, h in enumerate(phdr[:-1]) if h[1] == preset and h[2] == bank]
    if not matches:
        sys.exit(f"no preset bank {bank} program {preset}")
    p = matches[0]

    # Preset zones: copy bags with their generators and modulators.
    new_pbag, new_pgen, new_pmod, used_inst = [], [], [], []
    for b in range(phdr[p][3], phdr[p + 1][3]):
        new_pbag.append((len(new_pgen), len(new_pmod)))
        for g in range(pbag[b][0], pbag[b + 1][0]):
            oper, amount = pgen[g]
            if oper == GEN_INSTRUMENT:
                if amount not in used_inst:
                    used_inst.append(amount)
                amount = used_inst.index(amount)
            new_pgen.append((oper, amount))
        new_pmod.extend(pmod[m] for m in range(pbag[b][1], pbag[b + 1][1]))

    # Instrument zones, same way; sample IDs are remapped after collecting.
    new_inst, new_ibag, new_igen, new_imod, used_smp = [], [], [], [], []
    for i in used_inst:
        new_inst.append((inst[i][0], len(new_ibag)))
        for b in range(inst[i][1], inst[i + 1][1]):
            new_ibag.append((len(new_igen), len(new_imod)))
            for g in range(ibag[b][0], ibag[b + 1][0]):
                oper, amount = igen[g]
                if oper == GEN_SAMPLE_ID and amount not in used_smp:
                    used_smp.append(amount)
                new_igen.append((oper, amount))
            new_imod.extend(imod[m] for m in range(ibag[b][1], ibag[b + 1][1]))

    # Stereo partners must travel with their mates (sampleLink).
    k = 0
    while k < len(used_smp):
        h = shdr[used_smp[k]]
        if h[9] & 0x8000:
            sys.exit("ROM samples are not supported")
        if h[9] in (2, 4, 8) and h[8] not in used_smp:
            used_smp.append(h[8])
        k += 1
    remap = {old: new for new, old in enumerate(used_smp)}
    new_igen = [
        (o, remap[a]) if o == GEN_SAMPLE_ID else (o, a) for o, a in new_igen
    ]

    # Sample data: used ranges in order, each followed by 46 zero points.
    sdta = lists[b"sdta"]
    smpl = sdta[b"smpl"]
    sm24 = sdta.get(b"sm24")
    out16, out24, new_shdr = bytearray(), bytearray(), []
    for old in used_smp:
        name, start, end, lstart, lend, rate, pitch, corr, link, stype = shdr[old]
        if not (start <= end <= len(smpl) // 2):
            sys.exit(f"sample {name!r} range {start}..{end} outside smpl")
        base = len(out16) // 2
        out16 += smpl[2 * start : 2 * end] + bytes(2 * GUARD_POINTS)
        if sm24 is not None:
            out24 += sm24[start:end] + bytes(GUARD_POINTS)
        shift = base - start
        new_link = remap.get(link, 0) if stype in (2, 4, 8) else 0
        new_shdr.append(
            (name, base, base + end - start, lstart + shift, lend + shift, rate,
             pitch, corr, new_link, stype)
        )

    term_p = phdr[-1]
    out_pdta = [
        (b"phdr", [phdr[p][:3] + (0,) + phdr[p][4:],
                   (term_p[0], 0, 0, len(new_pbag)) + term_p[4:]], PHDR),
        (b"pbag", new_pbag + [(len(new_pgen), len(new_pmod))], BAG),
        (b"pmod", new_pmod + [(0, 0, 0, 0, 0)], MOD),
        (b"pgen", new_pgen + [(0, 0)], GEN),
        (b"inst", new_inst + [(b"EOI".ljust(20, b"\0"), len(new_ibag))], INST),
        (b"ibag", new_ibag + [(len(new_igen), len(new_imod))], BAG),
        (b"imod", new_imod + [(0, 0, 0, 0, 0)], MOD),
        (b"igen", new_igen + [(0, 0)], GEN),
        (b"shdr", new_shdr + [(b"EOS".ljust(20, b"\0"), 0, 0, 0, 0, 0, 0, 0, 0, 0)], SHDR),
    ]
    pdta_body = b"".join(
        chunk(cid, b"".join(st.pack(*r) for r in recs)) for cid, recs, st in out_pdta
    )
    sdta_body = chunk(b"smpl", bytes(out16))
    if sm24 is not None:
        sdta_body += chunk(b"sm24", bytes(out24))
    return pdta_body, sdta_body, phdr[p][0], len(used_inst), len(used_smp)


def chunk(cid, body):
    pad = b"\0" if len(body) & 1 else b""
    return cid + struct.pack("<I", len(body)) + body + pad


def zstr(text):
    raw = text.encode("ascii") + b"\0"
    return raw + (b"\0" if len(raw) & 1 else b"")


def info_body(info, preset_name, source):
    out = b""
    for cid, body in info.items():
        if cid in (b"INAM", b"ICMT", b"ISFT"):
            continue
        out += chunk(cid, body)
        if cid == b"isng":
            out += chunk(b"INAM", zstr(f"{preset_name} (single preset)"))
    # Keep the original comment (FluidR3's states its MIT license), then say what we did.
    old = info.get(b"ICMT", b"").split(b"\0")[0].decode("ascii", "replace")
    note = f"Preset '{preset_name}' extracted unchanged from {source} by tools/extract_sf2_preset.py"
    out += chunk(b"ICMT", zstr(f"{old} {note}".strip()))
    out += chunk(b"ISFT", zstr("extract_sf2_preset.py"))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--bank", type=int, default=0)
    ap.add_argument("--preset", type=int, default=0)
    a = ap.parse_args()
    lists = read_sf2(a.input)
    pdta, sdta, name, n_inst, n_smp = extract(lists, a.bank, a.preset)
    name = name.split(b"\0")[0].decode("ascii", "replace")
    source = a.input.rsplit("/", 1)[-1]
    body = (b"sfbk" + chunk(b"LIST", b"INFO" + info_body(lists[b"INFO"], name, source))
            + chunk(b"LIST", b"sdta" + sdta) + chunk(b"LIST", b"pdta" + pdta))
    with open(a.output, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", len(body)) + body)
    print(f"{a.output}: preset '{name}' (bank {a.bank}, program {a.preset}), "
          f"{n_inst} instrument(s), {n_smp} sample(s), {8 + len(body)} bytes")


if __name__ == "__main__":
    main()
