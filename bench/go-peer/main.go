// go-peer: the obvious alternative to the mock server, for comparison in the
// same benchmark run: Go's net/http with the three Telepresence handlers and
// their matching rules (client or agent side, header matchers exact or regex,
// path prefix/equal/regex, metadata), wire format 2.25, no journal.
//
//   go build -o go-peer . && ./go-peer -listen 127.0.0.1:9981 -intercept-id ID -http-header x-dev=alice
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

type headerMatcher struct {
	name  string
	value string
	re    *regexp.Regexp
}

func (m headerMatcher) matches(h http.Header) bool {
	v := h.Get(m.name)
	if m.re != nil {
		return v != "" && m.re.MatchString(v)
	}
	return v == m.value
}

type intercept struct {
	id         string
	port       uint16
	headers    []headerMatcher
	pathPrefix string
	pathEqual  string
	pathRegex  *regexp.Regexp
	metadata   map[string]string
}

func (i *intercept) matches(h http.Header, path string) bool {
	for _, m := range i.headers {
		if !m.matches(h) {
			return false
		}
	}
	switch {
	case i.pathRegex != nil:
		return path != "" && i.pathRegex.MatchString(path)
	case i.pathEqual != "":
		return path == i.pathEqual
	default:
		return strings.HasPrefix(path, i.pathPrefix)
	}
}

type server struct {
	clientSide bool
	intercepts []*intercept
}

type info struct {
	Intercepted bool              `json:"intercepted"`
	ClientSide  bool              `json:"clientSide"`
	Metadata    map[string]string `json:"metadata,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v interface{}) {
	body, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (s *server) decide(r *http.Request) (*info, error) {
	path := r.FormValue("path")
	var port uint16
	if cps := r.FormValue("containerPort"); cps != "" {
		p, err := strconv.ParseUint(cps, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("containerPort: %w", err)
		}
		port = uint16(p)
	}
	caller := r.Header.Get("x-telepresence-caller-intercept-id")
	var found *intercept
	if s.clientSide {
		for _, i := range s.intercepts {
			if caller != "" && i.id == caller {
				if i.matches(r.Header, path) {
					found = i
				}
				break
			}
		}
	} else {
		if port == 0 && len(s.intercepts) > 0 {
			port = s.intercepts[0].port
			for _, i := range s.intercepts {
				if i.port != port {
					port = 0
				}
			}
		}
		for _, i := range s.intercepts {
			if i.port == port && (caller == "" || caller == i.id) && i.matches(r.Header, path) {
				found = i
				break
			}
		}
	}
	result := &info{ClientSide: s.clientSide}
	if found != nil {
		result.Intercepted = true
		result.Metadata = found.metadata
	}
	return result, nil
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	listen := flag.String("listen", "127.0.0.1:9981", "address")
	side := flag.String("side", "client", "client or agent")
	id := flag.String("intercept-id", "peer:mock", "intercept ID")
	port := flag.Uint("container-port", 8080, "container port")
	prefix := flag.String("http-path-prefix", "", "path prefix")
	var headers, metas multiFlag
	flag.Var(&headers, "http-header", "K=V (repeatable)")
	flag.Var(&metas, "http-meta", "K=V (repeatable)")
	flag.Parse()

	i := &intercept{id: *id, port: uint16(*port), pathPrefix: *prefix, metadata: map[string]string{}}
	for _, h := range headers {
		kv := strings.SplitN(h, "=", 2)
		m := headerMatcher{name: kv[0], value: kv[1]}
		if strings.ContainsAny(kv[1], `\.+*?()|[]{}^$`) {
			m.re = regexp.MustCompile(kv[1])
		}
		i.headers = append(i.headers, m)
	}
	keys := []string{}
	for _, m := range metas {
		kv := strings.SplitN(m, "=", 2)
		i.metadata[kv[0]] = kv[1]
		keys = append(keys, kv[0])
	}
	sort.Strings(keys)
	s := &server{clientSide: *side == "client", intercepts: []*intercept{i}}

	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("/consume-here", func(w http.ResponseWriter, r *http.Request) {
		result, err := s.decide(r)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, result.Intercepted == s.clientSide)
	})
	mux.HandleFunc("/intercept-info", func(w http.ResponseWriter, r *http.Request) {
		result, err := s.decide(r)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, result)
	})
	log.Printf("go-peer listening on %s", *listen)
	log.Fatal(http.ListenAndServe(*listen, mux))
}
