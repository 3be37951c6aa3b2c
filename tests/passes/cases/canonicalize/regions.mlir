// RUN: canonicalize dce
// Folding and identities apply inside cond branches and while regions, with constants
// from outside the region.
func.func @main(%p: tensor<i1>, %x: tensor<f64>) -> tensor<f64> {
  %two = "gj.constant"() {value = dense<2.0> : tensor<f64>} : () -> tensor<f64>
  %one = "gj.constant"() {value = dense<1.0> : tensor<f64>} : () -> tensor<f64>
  %r = "gj.cond"(%p) ({
    %four = "gj.mul"(%two, %two) : (tensor<f64>, tensor<f64>) -> tensor<f64>
    %y = "gj.mul"(%x, %four) : (tensor<f64>, tensor<f64>) -> tensor<f64>
    "gj.yield"(%y) : (tensor<f64>) -> ()
  }, {
    %z = "gj.mul"(%x, %one) : (tensor<f64>, tensor<f64>) -> tensor<f64>
    "gj.yield"(%z) : (tensor<f64>) -> ()
  }) : (tensor<i1>) -> tensor<f64>
  %w = "gj.while"(%r) ({
  ^bb0(%a: tensor<f64>):
    %limit = "gj.add"(%two, %two) : (tensor<f64>, tensor<f64>) -> tensor<f64>
    %go = "gj.less"(%a, %limit) : (tensor<f64>, tensor<f64>) -> tensor<i1>
    "gj.condition"(%go) : (tensor<i1>) -> ()
  }, {
  ^bb0(%b: tensor<f64>):
    %n = "gj.neg"(%b) : (tensor<f64>) -> tensor<f64>
    %nn = "gj.neg"(%n) : (tensor<f64>) -> tensor<f64>
    %three = "gj.add"(%two, %one) : (tensor<f64>, tensor<f64>) -> tensor<f64>
    %next = "gj.add"(%nn, %three) : (tensor<f64>, tensor<f64>) -> tensor<f64>
    "gj.yield"(%next) : (tensor<f64>) -> ()
  }) : (tensor<f64>) -> tensor<f64>
  func.return %w : tensor<f64>
}
// CHECK:      "gj.cond"(%arg0
// CHECK-NEXT:   %{{[0-9]+}} = "gj.constant"() {value = dense<4.0> : tensor<f64>}
// CHECK-NEXT:   %{{[0-9]+}} = "gj.mul"(%arg1, %{{[0-9]+}}
// CHECK-NEXT:   "gj.yield"
// CHECK-NEXT: }, {
// CHECK-NEXT:   "gj.yield"(%arg1
// CHECK:      }, {
// CHECK-NEXT: ^bb0([[B:%arg[0-9]+]]: tensor<f64>):
// CHECK-NEXT:   [[THREE:%[0-9]+]] = "gj.constant"() {value = dense<3.0> : tensor<f64>}
// CHECK-NEXT:   [[NEXT:%[0-9]+]] = "gj.add"([[B]], [[THREE]]
// CHECK-NEXT:   "gj.yield"([[NEXT]]
// CHECK-NOT:  "gj.neg"
