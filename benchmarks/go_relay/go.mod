module gorelay

go 1.26
