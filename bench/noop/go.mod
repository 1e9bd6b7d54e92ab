module github.com/tfa-plugin/noop

go 1.21
