package main

import (
	"html/template"
	"os"
)

func main() {
	t := template.Must(template.New("page").Parse("<p title={{.}}>hello</p>\n"))
	if err := t.Execute(os.Stdout, os.Args[0]); err != nil {
		os.Exit(1)
	}
}
