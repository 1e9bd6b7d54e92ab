module github.com/tfa-plugin/entraauth

go 1.21
