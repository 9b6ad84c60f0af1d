package interop

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

// The tests of this file hold the case list to the catalogue (src/cases.rs)
// and the tables of implementations/CONTRACT.md, read from those files.

// repoFile reads a file of the repository, seen from go/interop.
func repoFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", path))
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return string(data)
}

// tableRows returns the cells of each row of the markdown table that
// follows the first line starting with header in text, from heading on
// (heading "" for the whole text); the header and separator lines are
// left out.
func tableRows(t *testing.T, text, heading, header string) [][]string {
	t.Helper()
	i := strings.Index(text, heading)
	if i < 0 {
		t.Fatalf("no %q in the contract", heading)
	}
	text = text[i:]
	j := strings.Index(text, "\n"+header)
	if j < 0 {
		t.Fatalf("no table %q after %q in the contract", header, heading)
	}
	var rows [][]string
	for _, line := range strings.Split(text[j+1:], "\n")[2:] {
		if !strings.HasPrefix(line, "| `") {
			break
		}
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		for k := range cells {
			cells[k] = strings.TrimSpace(cells[k])
		}
		rows = append(rows, cells)
	}
	if len(rows) == 0 {
		t.Fatalf("table %q after %q has no rows", header, heading)
	}
	return rows
}

// catalogueNames reads the case names of the Case enum of src/cases.rs, in
// its order: each variant's snake_case name, or its #[strum(serialize)].
func catalogueNames(t *testing.T) []string {
	t.Helper()
	src := repoFile(t, "src/cases.rs")
	start := strings.Index(src, "pub enum Case {")
	if start < 0 {
		t.Fatal("no `pub enum Case {` in src/cases.rs")
	}
	body := src[start+len("pub enum Case {"):]
	body = body[:strings.Index(body, "\n}")]
	serialize := regexp.MustCompile(`^#\[strum\(serialize = "([a-z0-9_]+)"\)\]$`)
	variant := regexp.MustCompile(`^([A-Z][A-Za-z0-9]*),$`)
	upper := regexp.MustCompile(`([a-z0-9])([A-Z])`)
	var names []string
	override := ""
	for _, line := range strings.Split(body, "\n") {
		line = strings.TrimSpace(line)
		if m := serialize.FindStringSubmatch(line); m != nil {
			override = m[1]
		} else if m := variant.FindStringSubmatch(line); m != nil {
			name := override
			if name == "" {
				name = strings.ToLower(upper.ReplaceAllString(m[1], "${1}_${2}"))
			}
			names = append(names, name)
			override = ""
		}
	}
	return names
}

// TestCatalogueMatchesContract holds Cases to the catalogue and the
// contract: every case of src/cases.rs, in its order, each with its row of
// the checks table; "all" is the 24 cases of DefaultGroups.
func TestCatalogueMatchesContract(t *testing.T) {
	var names []string
	for _, c := range Cases {
		names = append(names, c.Name)
	}
	if want := catalogueNames(t); !slices.Equal(names, want) {
		t.Errorf("Cases = %q\nwant the catalogue of src/cases.rs, %q", names, want)
	}

	rows := tableRows(t, repoFile(t, "implementations/CONTRACT.md"), "## Checks", "| case | checks |")
	byName := map[string]Case{}
	for _, c := range Cases {
		byName[c.Name] = c
	}
	for _, row := range rows {
		name := strings.Trim(row[0], "`")
		// A row may explain its names in parentheses after the list.
		list, _, _ := strings.Cut(row[1], " (")
		var want []string
		for _, w := range strings.Fields(list) {
			want = append(want, strings.Trim(w, "`"))
		}
		c, ok := byName[name]
		if !ok {
			t.Errorf("the checks table names %s, which Cases does not have", name)
			continue
		}
		if !slices.Equal(c.CheckNames, want) {
			t.Errorf("%s CheckNames = %q, want %q (the contract's checks table)", name, c.CheckNames, want)
		}
	}
	if len(rows) != len(Cases) {
		t.Errorf("the checks table has %d rows, Cases %d cases", len(rows), len(Cases))
	}

	all, err := ParseCases("all")
	if err != nil || len(all) != 24 {
		t.Fatalf(`ParseCases("all") = %d cases, %v; want 24`, len(all), err)
	}
	for _, c := range all {
		if !slices.Contains(DefaultGroups, c.Group) {
			t.Errorf(`ParseCases("all") has %s of group %s, want only the groups %q`, c.Name, c.Group, DefaultGroups)
		}
	}
}

// TestEveryCaseIsPlayedOrRefused checks that each case but the bad_input
// ones has a function, and that ParseCases refuses the bad_input ones (the
// bad client's), naming them.
func TestEveryCaseIsPlayedOrRefused(t *testing.T) {
	for _, c := range Cases {
		if (c.Run == nil) != (c.Group == GroupBadInput) {
			t.Errorf("%s of group %s: Run set %t, want a function for every case but the bad_input ones", c.Name, c.Group, c.Run != nil)
		}
		_, err := ParseCases(c.Name)
		if (err != nil) != (c.Group == GroupBadInput) {
			t.Errorf("ParseCases(%q) = %v, want an error for the bad_input cases only", c.Name, err)
		}
	}
	_, err := ParseCases("empty_unary,oversized_request,truncated_frame")
	want := "oversized_request, truncated_frame: bad_input case(s), played by the bad client of fixtures/ against servers, not by a client"
	if err == nil || err.Error() != want {
		t.Errorf("ParseCases(with bad_input cases) = %v, want %q", err, want)
	}
}

// codeNumber reads the number of a contract code such as "INTERNAL (13)".
var codeNumber = regexp.MustCompile(`^[A-Z_]+ \((\d+)\)`)

// TestWireTableMatchesContract holds WireCases to the contract's wire
// table: the same cases in the same order, each wanting the code of its
// row; silent_server with its 1 s deadline, every other call 10 s.
func TestWireTableMatchesContract(t *testing.T) {
	rows := tableRows(t, repoFile(t, "implementations/CONTRACT.md"), "#### `wire`", "| case | what the bad server answers | code |")
	if len(rows) != len(WireCases) {
		t.Errorf("the wire table has %d rows, WireCases %d", len(rows), len(WireCases))
	}
	for i, row := range rows[:min(len(rows), len(WireCases))] {
		name := strings.Trim(row[0], "`")
		m := codeNumber.FindStringSubmatch(row[len(row)-1])
		if m == nil {
			t.Fatalf("wire row %s: cannot read the code of %q", name, row[len(row)-1])
		}
		n, _ := strconv.Atoi(m[1])
		wc := WireCases[i]
		if wc.Name != name || wc.Code != codes.Code(n) {
			t.Errorf("WireCases[%d] = %s wanting %s (%d), the contract's row %d: %s wanting %s", i, wc.Name, wc.Code, wc.Code, i, name, m[0])
		}
		// The contract's deadlines: 3 s, 1 s for silent_server.
		want := 3 * time.Second
		if name == "silent_server" {
			want = time.Second
		}
		if wc.Timeout != want {
			t.Errorf("%s deadline = %s, want %s", wc.Name, wc.Timeout, want)
		}
	}
	for _, wc := range WireCases {
		c := caseNamed(t, wc.Name)
		if c.Group != GroupWire || !slices.Equal(c.CheckNames, []string{"status_code"}) || c.Run == nil {
			t.Errorf("case %s = group %s, checks %q, run set %t; want wire, [status_code], a function", c.Name, c.Group, c.CheckNames, c.Run != nil)
		}
	}
}

// TestTLSTableMatchesContract holds TLSCases to the contract's tls table:
// the same cases in the same order, mtls_accepted checking status (OK),
// each refusal status_code with its code.
func TestTLSTableMatchesContract(t *testing.T) {
	rows := tableRows(t, repoFile(t, "implementations/CONTRACT.md"), "### TLS refusals", "| case | the channel | checks |")
	if len(rows) != len(TLSCases) {
		t.Fatalf("the tls table has %d rows, TLSCases %d", len(rows), len(TLSCases))
	}
	for i, row := range rows {
		name := strings.Trim(row[0], "`")
		check, want, _ := strings.Cut(row[2], ": ")
		check = strings.Trim(check, "`")
		tc := TLSCases[i]
		var code codes.Code
		if m := codeNumber.FindStringSubmatch(want); m != nil {
			n, _ := strconv.Atoi(m[1])
			code = codes.Code(n)
		} else if !strings.HasPrefix(want, "OK") {
			t.Fatalf("tls row %s: cannot read the status of %q", name, row[2])
		}
		if tc.Name != name || tc.checkName() != check || tc.Code != code {
			t.Errorf("TLSCases[%d] = %s, check %s wanting %s; the contract's row: %s, check %s wanting %s", i, tc.Name, tc.checkName(), tc.Code, name, check, code)
		}
	}
}
