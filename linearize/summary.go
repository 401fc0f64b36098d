package linearize

import (
	"encoding/json"
	"os"
	"sync"

	"github.com/anishathalye/porcupine"
)

// Summary is what the report shows of one implementation in one scenario:
// how many histories and operations were checked, and the verdict over
// all of them (Illegal if any history was, else Unknown if any check timed
// out, else Ok). It is written as one JSON line by AppendJSONLines.
type Summary struct {
	Family    string                `json:"family"`   // counter, lock, semaphore, ...
	Impl      string                `json:"impl"`     // registry name
	Scenario  string                `json:"scenario"` // e.g. "stress, GOMAXPROCS 2"
	Histories int                   `json:"histories"`
	Ops       int                   `json:"ops"`
	Illegal   int                   `json:"illegal"` // histories found Illegal
	Verdict   porcupine.CheckResult `json:"verdict"`
	// Visualization is the path of the first Illegal history's drawing,
	// if one was drawn.
	Visualization string `json:"visualization,omitempty"`
}

// Add counts one checked history into s.
func (s *Summary) Add(v Verdict) {
	s.Histories++
	s.Ops += v.Ops
	switch {
	case v.Result == porcupine.Illegal:
		s.Illegal++
		s.Verdict = porcupine.Illegal
		if s.Visualization == "" {
			s.Visualization = v.Visualization
		}
	case v.Result == porcupine.Unknown && s.Verdict != porcupine.Illegal:
		s.Verdict = porcupine.Unknown
	case s.Verdict == "":
		s.Verdict = porcupine.Ok
	}
}

var appendMu sync.Mutex

// AppendJSONLines appends each summary to the file at path as one JSON
// object per line, creating the file if needed. Concurrent calls in one
// process are serialised; lines written by separate processes are single
// appends each, and do not interleave on a local file system.
func AppendJSONLines(path string, summaries ...Summary) error {
	appendMu.Lock()
	defer appendMu.Unlock()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	for _, s := range summaries {
		line, err := json.Marshal(s)
		if err != nil {
			f.Close()
			return err
		}
		if _, err := f.Write(append(line, '\n')); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// ReadJSONLines reads the summaries AppendJSONLines wrote to path.
func ReadJSONLines(path string) ([]Summary, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Summary
	dec := json.NewDecoder(f)
	for dec.More() {
		var s Summary
		if err := dec.Decode(&s); err != nil {
			return out, err
		}
		out = append(out, s)
	}
	return out, nil
}
