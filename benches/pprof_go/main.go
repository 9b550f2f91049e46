// The reference pprof parser, Google's github.com/google/pprof/profile (Debian:
// golang-github-google-pprof-dev), on the profiles `cargo bench --bench pyroscope` writes to
// target/pyroscope-bench: profile.Parse decodes and checks a profile (every id resolved), what
// stackd's pprof/decode_and_check does. Prints the median MiB/s of -rounds rounds of at least
// one second each. Run by benches/pyroscope.sh.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/google/pprof/profile"
)

func main() {
	dir := flag.String("dir", "target/pyroscope-bench", "where the profiles are")
	rounds := flag.Int("rounds", 5, "rounds")
	flag.Parse()
	files, err := filepath.Glob(filepath.Join(*dir, "executor-*.pprof"))
	if err != nil || len(files) == 0 {
		fmt.Fprintln(os.Stderr, "no profiles: run `cargo bench --bench pyroscope` first")
		os.Exit(1)
	}
	var bodies [][]byte
	total := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			panic(err)
		}
		bodies = append(bodies, b)
		total += len(b)
	}
	var rates []float64
	for r := 0; r < *rounds; r++ {
		start := time.Now()
		n := 0
		for time.Since(start) < time.Second {
			for _, b := range bodies {
				if _, err := profile.ParseData(b); err != nil {
					panic(err)
				}
			}
			n++
		}
		rates = append(rates, float64(n*total)/time.Since(start).Seconds()/(1<<20))
	}
	sort.Float64s(rates)
	fmt.Printf("{\"peer\":\"google/pprof profile.ParseData\",\"files\":%d,\"bytes\":%d,\"median_mib_s\":%.1f}\n", len(files), total, rates[len(rates)/2])
}
