// Package monitoring holds what operators load into Prometheus and Grafana to watch idpsync:
// idpsync.rules.yml (recording and alerting rules), idpsync.rules.test.yml and
// idpsync.rules.hours.test.yml (their promtool unit tests), and idpsync-dashboard.json (a
// Grafana dashboard).
//
// It is a Go module of its own so that the service's go.mod does not carry Prometheus: its tests
// parse every expression of the rules and the dashboard with Prometheus's PromQL parser, check the
// metrics and labels they use against the ones idpsync emits (the contract in
// monitoring_test.go, compared with the registrations under internal/ and cmd/), and check that
// every alert has a unit test where it fires and one where it does not. `make monitoring-check`
// runs them after promtool check rules and promtool test rules.
package monitoring
