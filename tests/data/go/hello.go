package main

import (
	"encoding/pem"
	"html/template"
	"os"
)

// Block is handed to the template as data. Its exported method stays linked (a template may
// call any exported method of its data, through reflect), but nothing calls it directly, so
// encoding/pem.Decode is reached only through an indirect call.
type Block struct{ Data []byte }

// Decode parses the block's data as PEM.
func (b Block) Decode() string {
	p, _ := pem.Decode(b.Data)
	if p == nil {
		return ""
	}
	return p.Type
}

func main() {
	t := template.Must(template.New("page").Parse("<p title={{.}}>hello</p>\n"))
	if err := t.Execute(os.Stdout, Block{[]byte(os.Args[0])}); err != nil {
		os.Exit(1)
	}
}
