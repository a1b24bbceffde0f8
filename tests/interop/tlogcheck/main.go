// tlogcheck -- reads a carepass register with Go's golang.org/x/mod/sumdb/note and sumdb/tlog.
//
// It is the interoperability check of the register (ARCHITECTURE.md, "Formats other
// tools must read"): nothing here shares code with the C writer; every hash, proof and
// signature is computed by the Go packages Debian ships (golang-golang-x-mod-dev).
//
// Usage:
//
//	tlogcheck [-vkey FILE] [-old CHECKPOINT_FILE] [-skey SIGNER_KEY_FILE] REGISTER_DIR
//
// Checks, in order (each prints "ok" or "FAIL" with the reason):
//
//  1. note.Open verifies REGISTER_DIR/checkpoint with the vkey (note.NewVerifier; the
//     file may hold several vkeys, one a line, e.g. a register's key history: any of
//     them may sign); the body parses as a c2sp.org/tlog-checkpoint (origin, size,
//     base64 root) and the origin is the name of the key that signed it.
//
//  2. Every entry bundle tile/entries/<N>[.p/<W>] of the tree parses (uint16 length +
//     bytes, exactly W entries, nothing left over).
//
//  3. Go recomputes the tree from the entries alone (tlog.StoredHashes) and its root
//     equals the checkpoint root; every hash tile the tree needs (all levels, full and
//     partial) equals, byte for byte, what tlog.ReadTileData computes.
//
//  4. Through a tlog.TileReader over the C2SP paths, tlog.TileHashReader +
//     tlog.TreeHash gives the checkpoint root.
//
//     TileHashReader is meant to authenticate every tile it reads against the tree
//     hash, but in x/mod 0.7.0 (Debian's) it does not always: ReadHashes starts its
//     "authenticate full tiles against their parents" loop at len(stx), the number of
//     subtrees of the tree, while the tiles those subtrees need were de-duplicated
//     into fewer slots; the tiles fetched into the slots in between are used
//     unchecked. For a tree of 674 leaves (subtrees 512+128+32+2 in two tiles), a
//     damaged full tile/0/000 comes back from ReadHashes with no error. So this
//     program does not rely on TileHashReader alone: check 3 compares every tile with
//     Go's own computation and check 5 ends in CheckRecord against the signed root.
//
//  5. For every entry: tlog.RecordHash, tlog.ProveRecord from the tiles, and
//     tlog.CheckRecord against the checkpoint root.
//
//  6. With -old: note.Open on the older checkpoint too, tlog.ProveTree from the tiles
//     and tlog.CheckTree(proof, new size, new root, old size, old root); the old root
//     is recomputed from the current tiles (tlog.TreeHash) and from the partial tiles
//     published for the old size (TileHashReader over the old tree).
//
//  7. With -skey (the signer's key file, a note signer key "PRIVATE+KEY+..."):
//     note.NewSigner accepts it, its verifier key is one of the vkeys, and note.Sign
//     over the checkpoint body reproduces that key's signature line byte for byte
//     (Ed25519 signatures are deterministic).
//
// Exit status: 0 when every check passed, 1 when any failed, 2 for a usage error.
//
// Build offline in GOPATH mode against Debian's sources (no go.mod, no downloads):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode GOPROXY=off GOCACHE=$(mktemp -d) \
//	    go build -o /tmp/tlogcheck .
package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// tileHeight is the C2SP tlog-tiles tile height (256 hashes per full tile).
const tileHeight = 8

// tileWidth is the number of hashes (or entries) in a full tile.
const tileWidth = 1 << tileHeight

// checker counts outcomes and prints one line per check.
type checker struct {
	failures int // checks that failed
	passes   int // checks that passed
}

func (c *checker) ok(format string, args ...interface{}) {
	c.passes++
	fmt.Printf("ok    "+format+"\n", args...)
}

func (c *checker) fail(format string, args ...interface{}) {
	c.failures++
	fmt.Printf("FAIL  "+format+"\n", args...)
}

// checkpoint is a verified, parsed c2sp.org/tlog-checkpoint.
type checkpoint struct {
	origin string    // first body line; also the signing key's name
	signer string    // "<name>+<key hash>" of the verified signature
	tree   tlog.Tree // size and root hash
}

// keyring is the verifier keys read from the vkey file.
type keyring struct {
	list    []note.Verifier // every key, in file order
	allowed note.Verifiers  // note.VerifierList(list...)
}

// readKeyring parses a file of vkeys, one a line (blank lines and duplicates ignored).
func readKeyring(path string) (*keyring, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k := &keyring{}
	seen := map[string]bool{}
	for _, line := range strings.Split(string(text), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || seen[line] {
			continue
		}
		seen[line] = true
		v, err := note.NewVerifier(line)
		if err != nil {
			return nil, fmt.Errorf("note.NewVerifier(%q): %v", line, err)
		}
		k.list = append(k.list, v)
	}
	if len(k.list) == 0 {
		return nil, fmt.Errorf("%s holds no verifier key", path)
	}
	k.allowed = note.VerifierList(k.list...)
	return k, nil
}

// names lists the keys as "<name>+<key hash>".
func (k *keyring) names() string {
	out := make([]string, len(k.list))
	for i, v := range k.list {
		out[i] = fmt.Sprintf("%s+%08x", v.Name(), v.KeyHash())
	}
	return strings.Join(out, ", ")
}

// c2spPath maps a Go tile coordinate to its C2SP tlog-tiles path.
//
// Go's Tile.Path() writes "tile/<H>/<L>/<N>[.p/<W>]" with "data" for the record
// level (L == -1); C2SP tlog-tiles fixes the height at 8, drops the height path
// element and calls the record level "entries": "tile/<L>/<N>[.p/<W>]",
// "tile/entries/<N>[.p/<W>]". The N encoding (x001/x234/067) is the same in both,
// so it is taken from Go's own Path() rather than re-implemented here.
func c2spPath(t tlog.Tile) (string, error) {
	if t.H != tileHeight {
		return "", fmt.Errorf("tile height %d requested; C2SP tiles have height %d", t.H, tileHeight)
	}
	goPath := t.Path()
	prefix := fmt.Sprintf("tile/%d/", t.H)
	if !strings.HasPrefix(goPath, prefix) {
		return "", fmt.Errorf("unexpected Go tile path %q", goPath)
	}
	rest := goPath[len(prefix):]
	if strings.HasPrefix(rest, "data/") {
		rest = "entries/" + rest[len("data/"):]
	}
	return "tile/" + rest, nil
}

// dirTileReader is a tlog.TileReader over a register directory in the C2SP layout.
type dirTileReader struct {
	dir   string      // register directory
	reads map[int]int // tiles read, by level (for the summary)
}

func (r *dirTileReader) Height() int { return tileHeight }

// ReadTiles reads each tile's file; a missing or wrongly sized file is an error
// (TileHashReader then authenticates the contents against the tree hash).
func (r *dirTileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		rel, err := c2spPath(t)
		if err != nil {
			return nil, err
		}
		data, err := os.ReadFile(filepath.Join(r.dir, filepath.FromSlash(rel)))
		if err != nil {
			return nil, fmt.Errorf("tile %s: %v", rel, err)
		}
		if len(data) != t.W*tlog.HashSize {
			return nil, fmt.Errorf("tile %s: %d bytes, want %d (%d hashes)", rel, len(data),
				t.W*tlog.HashSize, t.W)
		}
		out[i] = data
		r.reads[t.L]++
	}
	return out, nil
}

// SaveTiles is a no-op: nothing is cached.
func (r *dirTileReader) SaveTiles(tiles []tlog.Tile, data [][]byte) {}

// openCheckpoint verifies a signed note with v and parses its body.
//
// The body is a c2sp.org/tlog-checkpoint: "<origin>\n<size>\n<base64 root>\n" and
// optional extension lines. tlog.ParseTree only accepts Go's sumdb form, whose first
// line is the fixed "go.sum database tree"; carepass's first line is its own origin.
// So the origin line is checked here and the rest is handed to tlog.ParseTree with
// Go's header in its place, which keeps Go's own (strict) parsing of size and hash.
func openCheckpoint(path string, keys *keyring) (*checkpoint, error) {
	msg, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	n, err := note.Open(msg, keys.allowed)
	if err != nil {
		var unverified *note.UnverifiedNoteError
		if errors.As(err, &unverified) {
			return nil, fmt.Errorf("note.Open: no signature by %s: %v", keys.names(), err)
		}
		return nil, fmt.Errorf("note.Open: %v", err)
	}
	if len(n.Sigs) == 0 {
		return nil, fmt.Errorf("note.Open returned no verified signature")
	}
	lines := strings.SplitN(n.Text, "\n", 2)
	if len(lines) != 2 || lines[0] == "" {
		return nil, fmt.Errorf("checkpoint body has no origin line")
	}
	origin := lines[0]
	sig := n.Sigs[0]
	if origin != sig.Name {
		return nil, fmt.Errorf("checkpoint origin %q is not the name of its key %q", origin, sig.Name)
	}
	tree, err := tlog.ParseTree([]byte("go.sum database tree\n" + lines[1]))
	if err != nil {
		return nil, fmt.Errorf("tlog.ParseTree on the size and root lines %q: %v", lines[1], err)
	}
	return &checkpoint{origin: origin, signer: fmt.Sprintf("%s+%08x", sig.Name, sig.Hash), tree: tree}, nil
}

// readEntries reads the entry bundles covering the first size entries.
func readEntries(dir string, size int64) ([][]byte, error) {
	capacity := size
	if capacity > 1<<20 { // the size comes from the checkpoint: do not trust it for memory
		capacity = 1 << 20
	}
	entries := make([][]byte, 0, capacity)
	for n := int64(0); n*tileWidth < size; n++ {
		w := size - n*tileWidth
		if w > tileWidth {
			w = tileWidth
		}
		rel, err := c2spPath(tlog.Tile{H: tileHeight, L: -1, N: n, W: int(w)})
		if err != nil {
			return nil, err
		}
		data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(rel)))
		if err != nil {
			return nil, fmt.Errorf("entry bundle: %v", err)
		}
		got := int64(0)
		for pos := 0; pos < len(data); got++ {
			if len(data)-pos < 2 {
				return nil, fmt.Errorf("%s: truncated length prefix at byte %d", rel, pos)
			}
			l := int(binary.BigEndian.Uint16(data[pos:]))
			pos += 2
			if l > len(data)-pos {
				return nil, fmt.Errorf("%s: entry %d of %d bytes runs past the end (%d left)",
					rel, got, l, len(data)-pos)
			}
			entries = append(entries, data[pos:pos+l])
			pos += l
		}
		if got != w {
			return nil, fmt.Errorf("%s: %d entries, want %d", rel, got, w)
		}
	}
	return entries, nil
}

// memHashes is every stored hash of a tree, computed by Go from the entries alone.
type memHashes []tlog.Hash

func (m *memHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(*m)) {
			return nil, fmt.Errorf("stored hash %d not computed (have %d)", x, len(*m))
		}
		out[i] = (*m)[x]
	}
	return out, nil
}

// treeTiles lists every hash tile (all levels) a tree of size n publishes.
func treeTiles(n int64) []tlog.Tile {
	var tiles []tlog.Tile
	for level := 0; n>>(uint(level)*tileHeight) > 0; level++ {
		count := n >> (uint(level) * tileHeight)
		for i := int64(0); i*tileWidth < count; i++ {
			w := count - i*tileWidth
			if w > tileWidth {
				w = tileWidth
			}
			tiles = append(tiles, tlog.Tile{H: tileHeight, L: level, N: i, W: int(w)})
		}
	}
	return tiles
}

// compareTiles checks each tile file against Go's computation; returns the failures.
func compareTiles(c *checker, dir string, tiles []tlog.Tile, hashes *memHashes, what string) int {
	bad := 0
	for _, t := range tiles {
		rel, err := c2spPath(t)
		if err != nil {
			c.fail("%s: %v", what, err)
			bad++
			continue
		}
		want, err := tlog.ReadTileData(t, hashes)
		if err != nil {
			c.fail("%s: tlog.ReadTileData(%s): %v", what, rel, err)
			bad++
			continue
		}
		got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(rel)))
		if err != nil {
			c.fail("%s: %v", what, err)
			bad++
			continue
		}
		if !bytes.Equal(got, want) {
			detail := fmt.Sprintf("%d bytes, want %d", len(got), len(want))
			if len(got) == len(want) {
				for i := 0; i < len(got); i += tlog.HashSize {
					if !bytes.Equal(got[i:i+tlog.HashSize], want[i:i+tlog.HashSize]) {
						detail = fmt.Sprintf("hash %d differs: file %x, Go %x", i/tlog.HashSize,
							got[i:i+tlog.HashSize], want[i:i+tlog.HashSize])
						break
					}
				}
			}
			c.fail("%s: %s differs from Go's tlog.ReadTileData (computed from the entry bundles): %s",
				what, rel, detail)
			bad++
		}
	}
	return bad
}

func main() {
	vkeyPath := flag.String("vkey", "", "verifier key file (note vkey format); default REGISTER_DIR/vkey")
	oldPath := flag.String("old", "", "an older checkpoint of the same log, to prove consistency with")
	skeyPath := flag.String("skey", "", "the signer's note key file, to re-sign the checkpoint with Go")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: tlogcheck [-vkey FILE] [-old CHECKPOINT] [-skey FILE] REGISTER_DIR\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	dir := flag.Arg(0)
	if *vkeyPath == "" {
		*vkeyPath = filepath.Join(dir, "vkey")
	}
	os.Exit(run(dir, *vkeyPath, *oldPath, *skeyPath))
}

// run does every check and returns the exit status.
func run(dir, vkeyPath, oldPath, skeyPath string) int {
	c := &checker{}
	finish := func() int {
		fmt.Printf("summary: %d checks passed, %d failed\n", c.passes, c.failures)
		if c.failures > 0 {
			fmt.Printf("RESULT: FAIL -- Go's sumdb/note and sumdb/tlog disagree with the register in %s\n", dir)
			return 1
		}
		fmt.Printf("RESULT: OK -- Go's sumdb/note and sumdb/tlog agree with the register in %s\n", dir)
		return 0
	}

	// 1. The verifier key and the checkpoint.
	keys, err := readKeyring(vkeyPath)
	if err != nil {
		c.fail("vkey: %v", err)
		return finish()
	}
	c.ok("note.NewVerifier: %s", keys.names())
	cp, err := openCheckpoint(filepath.Join(dir, "checkpoint"), keys)
	if err != nil {
		c.fail("checkpoint: %v", err)
		return finish()
	}
	size, root := cp.tree.N, cp.tree.Hash
	c.ok("note.Open: checkpoint signed by %s; origin %q, size %d, root %s", cp.signer, cp.origin, size, root)

	// 2. The entries.
	entries, err := readEntries(dir, size)
	if err != nil {
		c.fail("entries: %v", err)
		return finish()
	}
	c.ok("entry bundles: %d entries in %d bundles", len(entries), (size+tileWidth-1)/tileWidth)

	// 3. The tree recomputed by Go from the entries; every tile compared.
	hashes := &memHashes{}
	for i, e := range entries {
		hs, err := tlog.StoredHashes(int64(i), e, hashes)
		if err != nil {
			c.fail("tlog.StoredHashes(%d): %v", i, err)
			return finish()
		}
		*hashes = append(*hashes, hs...)
	}
	if size > 0 {
		th, err := tlog.TreeHash(size, hashes)
		switch {
		case err != nil:
			c.fail("tlog.TreeHash over the entries: %v", err)
		case th != root:
			c.fail("root recomputed by Go from the entries %s != checkpoint root %s", th, root)
		default:
			c.ok("tlog.TreeHash over the %d entries (tlog.StoredHashes) = checkpoint root", size)
		}
		tiles := treeTiles(size)
		if bad := compareTiles(c, dir, tiles, hashes, "tile"); bad == 0 {
			levels := 0
			for _, t := range tiles {
				if t.L+1 > levels {
					levels = t.L + 1
				}
			}
			c.ok("%d hash tiles (levels 0..%d, full and partial) equal tlog.ReadTileData", len(tiles), levels-1)
		}
	}

	// 4. Root through TileHashReader over the C2SP paths.
	reader := &dirTileReader{dir: dir, reads: map[int]int{}}
	hr := tlog.TileHashReader(cp.tree, reader)
	if size > 0 {
		th, err := tlog.TreeHash(size, hr)
		switch {
		case err != nil:
			c.fail("tlog.TreeHash via TileHashReader: %v", err)
			return finish()
		case th != root:
			c.fail("tlog.TreeHash via TileHashReader %s != checkpoint root %s", th, root)
			return finish()
		default:
			c.ok("tlog.TileHashReader + tlog.TreeHash(%d) = checkpoint root", size)
		}
	}

	// 5. Inclusion of every entry.
	inclBad := 0
	for i, e := range entries {
		rh := tlog.RecordHash(e)
		proof, err := tlog.ProveRecord(size, int64(i), hr)
		if err == nil {
			err = tlog.CheckRecord(proof, size, root, int64(i), rh)
		}
		if err != nil {
			inclBad++
			if inclBad <= 5 {
				c.fail("entry %d: tlog.ProveRecord/CheckRecord: %v", i, err)
			}
		}
	}
	if inclBad == 0 && size > 0 {
		c.ok("tlog.ProveRecord + tlog.CheckRecord for all %d entries", size)
	} else if inclBad > 5 {
		c.fail("... %d entries in all failed inclusion", inclBad)
	}

	// 6. Consistency with an older checkpoint.
	if oldPath != "" {
		old, err := openCheckpoint(oldPath, keys)
		if err != nil {
			c.fail("old checkpoint %s: %v", oldPath, err)
			return finish()
		}
		size1, root1 := old.tree.N, old.tree.Hash
		c.ok("note.Open: old checkpoint signed by %s; size %d, root %s", old.signer, size1, root1)
		switch {
		case old.origin != cp.origin:
			c.fail("old checkpoint origin %q != %q", old.origin, cp.origin)
		case size1 > size:
			c.fail("old checkpoint size %d is larger than the current %d", size1, size)
		case size1 == 0:
			c.ok("old checkpoint is the empty tree (consistent with any tree)")
		default:
			proof, err := tlog.ProveTree(size, size1, hr)
			if err == nil {
				err = tlog.CheckTree(proof, size, root, size1, root1)
			}
			if err != nil {
				c.fail("tlog.ProveTree/CheckTree %d -> %d: %v", size1, size, err)
			} else {
				c.ok("tlog.ProveTree + tlog.CheckTree: size %d (%d proof hashes) -> size %d",
					size1, len(proof), size)
			}
			if th, err := tlog.TreeHash(size1, hr); err != nil {
				c.fail("tlog.TreeHash(%d) from the current tiles: %v", size1, err)
			} else if th != root1 {
				c.fail("tlog.TreeHash(%d) from the current tiles %s != old root %s", size1, th, root1)
			} else {
				c.ok("tlog.TreeHash(%d) from the current tiles = old checkpoint root", size1)
			}
			// A client that saw only the old checkpoint reads the partial tiles
			// published for that size (C2SP: partial tiles for every checkpoint size).
			oldReader := &dirTileReader{dir: dir, reads: map[int]int{}}
			if th, err := tlog.TreeHash(size1, tlog.TileHashReader(old.tree, oldReader)); err != nil {
				c.fail("tiles published for the old size %d via TileHashReader: %v", size1, err)
			} else if th != root1 {
				c.fail("tiles published for the old size %d give root %s != %s", size1, th, root1)
			} else {
				c.ok("tlog.TileHashReader over the tiles of old size %d = old checkpoint root", size1)
			}
			if size1 <= int64(len(entries)) {
				old := memHashes((*hashes)[:tlog.StoredHashIndex(0, size1)])
				if bad := compareTiles(c, dir, treeTiles(size1), &old, "old-size tile"); bad == 0 {
					c.ok("%d hash tiles published for old size %d equal tlog.ReadTileData",
						len(treeTiles(size1)), size1)
				}
			}
		}
	}

	// 7. Go re-signs the checkpoint with carepass's own key file.
	if skeyPath != "" {
		checkResign(c, filepath.Join(dir, "checkpoint"), skeyPath, keys)
	}

	levels := make([]string, 0, len(reader.reads))
	for l := 0; l < 64; l++ {
		if n, ok := reader.reads[l]; ok {
			levels = append(levels, "level "+strconv.Itoa(l)+": "+strconv.Itoa(n))
		}
	}
	fmt.Printf("tile reads through tlog.TileReader: %s\n", strings.Join(levels, ", "))
	return finish()
}

// checkResign re-signs the checkpoint body with Go's note.Sign and the signer's key
// file, and compares with the checkpoint on disk.
func checkResign(c *checker, cpPath, skeyPath string, keys *keyring) {
	skey, err := os.ReadFile(skeyPath)
	if err != nil {
		c.fail("read signer key: %v", err)
		return
	}
	s, err := note.NewSigner(strings.TrimSpace(string(skey)))
	if err != nil {
		c.fail("note.NewSigner on the signer key file: %v", err)
		return
	}
	var v note.Verifier
	for _, k := range keys.list {
		if k.Name() == s.Name() && k.KeyHash() == s.KeyHash() {
			v = k
		}
	}
	if v == nil {
		c.fail("signer key %s+%08x is none of the verifier keys %s", s.Name(), s.KeyHash(), keys.names())
		return
	}
	msg, err := os.ReadFile(cpPath)
	if err != nil {
		c.fail("read checkpoint: %v", err)
		return
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		c.fail("note.Open: %v", err)
		return
	}
	again, err := note.Sign(&note.Note{Text: n.Text}, s)
	if err != nil {
		c.fail("note.Sign: %v", err)
		return
	}
	// Go's note has the one signature line of this key; the checkpoint may carry more
	// (other keys), so that line must be one of the checkpoint's signature lines.
	want := strings.TrimSuffix(string(again[len(n.Text)+1:]), "\n")
	for _, line := range strings.Split(string(msg[len(n.Text)+1:]), "\n") {
		if line == want {
			c.ok("note.NewSigner accepts the signer key file; note.Sign reproduces the checkpoint's signature byte for byte")
			return
		}
	}
	c.fail("note.Sign with the signer key gives the signature line %q, not in the checkpoint %q", want, msg)
}
