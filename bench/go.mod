module github.com/tfa-plugin/entraauth/bench

go 1.21

require github.com/tfa-plugin/entraauth v0.0.0

require github.com/traefik/yaegi v0.16.1 // indirect

replace github.com/tfa-plugin/entraauth => ../
