// Package deploy holds no code: it is the directory of what runs Hallpass
// (HAProxy and Redis configuration shared by docker-compose.yml and make
// cluster, the stand-in image build, the compose smoke test) and watches it
// (prometheus/: alert rules, their unit tests and a scrape configuration;
// grafana/: a dashboard). Its tests check the monitoring files against the
// metrics internal/metrics exports, and run promtool on the rules.
package deploy
